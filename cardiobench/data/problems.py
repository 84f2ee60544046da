"""Data problems found while reading or verifying a dataset: reported, never silently dropped."""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError


@dataclass(frozen=True)
class Problem:
    """One problem with one file; ``sample`` names the affected sample when there is one."""

    file: str
    problem: str
    severity: Literal["error", "warning"] = "error"
    sample: str | None = None

    def __str__(self) -> str:
        return f"{self.severity.upper()}: {self.file}: {self.problem}"


def problems_frame(problems: list[Problem]) -> pd.DataFrame:
    """Problems as a table (the run folder's ``skipped.csv``)."""
    return pd.DataFrame(
        [(p.sample, p.file, p.severity, p.problem) for p in problems],
        columns=["sample_id", "file", "severity", "problem"],
    )


def _held(splits: Sequence[str]) -> str:
    counts = Counter(str(s) for s in splits)
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"


def empty_splits(splits: Sequence[str], sources: Mapping[str, str]) -> list[str]:
    """The splits of ``sources`` (split -> the index file or folder it comes from) without a row."""
    present = set(map(str, splits))
    return [k for k in sources if k not in present]


def split_problems(splits: Sequence[str], sources: Mapping[str, str], what: str,
                   found: Sequence[Problem] = ()) -> list[Problem]:
    """A warning per split of ``sources`` without a usable row, naming the split and where it comes from
    (a run refuses such a folder: :func:`require_splits`; an evaluation of the TEST split alone does not).
    None while ``found`` holds an error: the refused rows are named there, and may be what emptied it."""
    if any(p.severity == "error" for p in found):
        return []
    return [Problem(sources[k], f"no usable {k} {what} (usable by split: {_held(splits)}); a run needs "
                                f"{', '.join(sources)}", severity="warning")
            for k in empty_splits(splits, sources)]


def require_splits(splits: Sequence[str], sources: Mapping[str, str], what: str,
                   root: str | os.PathLike) -> dict[str, np.ndarray]:
    """Row indices of each split of ``sources`` (split -> the index file or folder it comes from, relative
    to ``root``); DataError naming the empty splits and that file or folder when one has no usable row."""
    splits = np.asarray(list(map(str, splits)), dtype=object)
    empty = empty_splits(list(splits), sources)
    if empty:
        where = "; ".join(dict.fromkeys(f"{Path(root) / sources[k]}" for k in empty))
        raise DataError(f"{where}: no usable {' or '.join(empty)} {what} after validation (usable by split: "
                        f"{_held(list(splits))}); a run needs {', '.join(sources)}")
    return {k: np.flatnonzero(splits == k) for k in sources}
