"""The metric registry: named, documented functions of prediction rows, each with its CI and paired test.

A task spec names a metric by its registry name (or ``package.module:function`` for one defined
out of tree) and gives its arguments (which columns). A metric has ``compute(rows, args, ctx)`` ->
the ``metrics.json`` entry, and, when two runs can be compared on it, ``compare(a, b, args, ctx,
alternative)`` -> one row of ``cardiobench compare`` (``diff`` is always a - b). Both resample
patients (``ctx.groups``) whenever a patient has several rows. numpy/scipy/pandas only.

This module holds the registry, the :class:`Context` every metric gets, and the small helpers
metric modules share (reading a column, shaping an entry or a comparison row). Metric modules
import it and register into it; :mod:`cardiobench.evaluation.metrics` imports every built-in
metric module, so the registry is complete once :mod:`cardiobench.evaluation` is imported.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol

import numpy as np
import pandas as pd

from .. import families, stats
from ..errors import CardiobenchError
from ..registry import Registry, origin_of


@dataclass(frozen=True)
class Context:
    """How intervals are computed for one evaluation: level, method, resamples, and the patients."""

    level: float = 0.95
    method: str = "bca"
    n_resamples: int = 9999
    label: str = "default"
    groups: np.ndarray | None = None   # patient of each row, None when every patient has one row
    samples: str = "samples"           # what a row is, in words

    @property
    def resampled(self) -> str:
        return "patients" if self.groups is not None else f"{self.samples} (one per patient)"

    def subset(self, mask: np.ndarray) -> "Context":
        return replace(self, groups=None if self.groups is None else self.groups[mask])


class Metric(Protocol):
    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict | None: ...


METRICS: Registry[Any] = Registry("metric function", lambda: families.metrics(),
                                  hint="out-of-tree metrics: package.module:name in the spec")


def register_metric(name: str) -> Callable:
    """Class decorator: ``@register_metric("mae")`` on a class with ``compute`` (and ``compare``)."""
    def deco(cls):
        METRICS.register(name, cls(), origin=origin_of(cls))
        return cls
    return deco


def get_metric(name: str) -> Any:
    """A registered metric, or one imported from ``package.module:name`` (out-of-tree tasks)."""
    if ":" not in name:
        return METRICS.get(name)
    module, _, attr = name.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise CardiobenchError(f"metric {name!r} cannot be imported ({exc})") from None
    return obj() if isinstance(obj, type) else obj


def names() -> list[str]:
    return sorted(METRICS.loaded())


def _col(rows: pd.DataFrame, name: str) -> np.ndarray:
    if name not in rows.columns:
        raise CardiobenchError(f"predictions lack column {name!r}")
    return rows[name].to_numpy(float)


def _entry(r: stats.BootstrapCI, ctx: Context, definition: str = "") -> dict:
    out = {**r.as_dict(), "resampled": ctx.resampled, "ci_mode": ctx.label}
    if definition:
        out["definition"] = definition
    return out


def _comparison(r: stats.PairedDiff, n_resamples: int) -> dict:
    out = dict(a=r.estimate_a, b=r.estimate_b, diff=r.diff, low=r.low, high=r.high, p_value=r.p_value,
               p_floor=r.p_floor, p_two_sided=r.p_two_sided, test=f"paired {r.method} bootstrap ({n_resamples} resamples)")
    return {**out, "note": r.note} if r.note else out
