"""Data problems found while reading or verifying a dataset: reported, never silently dropped."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd


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
