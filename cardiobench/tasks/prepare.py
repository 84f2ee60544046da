"""The data-preparation step every task shares, before anything is trained:

    index the data -> load each sample once (decode-once cache) -> every problem into the run's
    skipped.csv -> drop the samples that failed -> split.csv -> refuse an empty split

A task gives the samples its format indexed (with its own split assignment and filtering done), the
problems found so far and how one sample is preprocessed; it gets back the usable samples, their
arrays and a typed :class:`Split`. A sample is never dropped silently: each dropped one is a row of
skipped.csv naming its file and the problem.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from ..data import source as data_source
from ..data.problems import Problem, require_splits
from ..data.source import DataSource, report_problems
from ..runs import Run

log = logging.getLogger("cardiobench")

SPLITS = ("TRAIN", "VAL", "TEST")


@dataclass(frozen=True)
class Split:
    """Row positions, in the prepared samples table, of each split (``split["TRAIN"]`` reads the same)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in SPLITS:
            raise KeyError(f"no split {name!r}; the splits are {', '.join(SPLITS)}")
        return getattr(self, name.lower())

    def items(self) -> list[tuple[str, np.ndarray]]:
        return [(name, self[name]) for name in SPLITS]

    def values(self) -> list[np.ndarray]:
        return [self[name] for name in SPLITS]

    @classmethod
    def of(cls, by: dict[str, np.ndarray]) -> "Split":
        return cls(by["TRAIN"], by["VAL"], by["TEST"])

    def sizes(self) -> str:
        """``"TRAIN/VAL/TEST"`` counts, for the log."""
        return f"{len(self.train)}/{len(self.val)}/{len(self.test)}"


@dataclass(frozen=True)
class Prepared:
    """The usable samples (index reset), their decoded arrays (same order), the split, the data folder
    they come from, and every problem reported in skipped.csv."""

    samples: pd.DataFrame
    arrays: list[Any]
    split: Split
    root: Path
    problems: list[Problem] = field(default_factory=list)


Loader = Callable[[pd.DataFrame], tuple[list[Any], list[Problem]]]
Inspector = Callable[[pd.DataFrame, list[Any]], list[Problem]]


def cached_loader(cfg: DictConfig, preprocess: Any, id_column: str = "sample_id", path_column: str = "path") -> Loader:
    """Each sample through the format's preprocessing with ``preprocess`` (its size or image config),
    decoded once into the cache (:func:`cardiobench.data.source.load`)."""
    return lambda samples: data_source.load(cfg, list(samples[id_column]), list(samples[path_column]), preprocess)


def prepare(run: Run, source: DataSource, samples: pd.DataFrame, problems: Sequence[Problem], load: Loader, *,
            sources: Mapping[str, str], split_columns: Sequence[str] | None, split_column: str = "split",
            what: str = "volumes", inspect: Inspector | None = None) -> Prepared:
    """Load ``samples``, drop the failed ones, report every problem in skipped.csv (with those
    ``inspect(samples, arrays)`` finds in the loaded samples, which it does not drop), write the split
    (``split_columns`` of the usable samples into split.csv; None: no split.csv), and refuse an empty
    TRAIN, VAL or TEST naming the file or folder it comes from (``sources``: split -> that file or
    folder, the format's ``split_sources(root)``)."""
    arrays, load_problems = load(samples)
    problems = [*problems, *load_problems]
    ok = np.array([a is not None for a in arrays], dtype=bool)
    samples, arrays = samples[ok].reset_index(drop=True), [a for a in arrays if a is not None]
    if inspect is not None:
        problems += inspect(samples, arrays)
    report_problems(run.path, problems)
    if split_columns is not None:
        run.write_table("split.csv", samples[list(split_columns)])
    split = Split.of(require_splits(list(samples[split_column]), sources, what, source.root))
    return Prepared(samples, arrays, split, source.root, problems)
