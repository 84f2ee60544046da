"""Point metrics with named definitions, and their sum decompositions for fast bootstraps.

A *sum statistic* is a function of per-row moments summed over rows (MAE, RMSE, R², mean): its
bootstrap replicates and jackknife values come from resampled or leave-one-out sums, with no
per-resample pass over the rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class SumStatistic:
    """``moments(*arrays) -> (n, k)`` per row; ``finalize(sums (..., k), counts (...)) -> stat``."""

    name: str
    moments: Callable[..., np.ndarray]
    finalize: Callable[[np.ndarray, np.ndarray], np.ndarray]
    definition: str
    bounds: tuple[float, float] = (-np.inf, np.inf)  # the range it can take; no interval leaves it

    def __call__(self, *arrays: np.ndarray) -> float:
        m = self.moments(*arrays)
        return float(self.finalize(m.sum(axis=0), np.asarray(len(m), dtype=np.float64)))


def _r2_final(s: np.ndarray, c: np.ndarray) -> np.ndarray:
    """1 - SS_res / SS_tot; NaN where SS_tot vanishes (a resample of one repeated true value: R² is
    undefined there, and the rounding left in sum(y²) - sum(y)²/n would give values far above 1)."""
    ss_tot = s[..., 1] - s[..., 0] ** 2 / c
    degenerate = ss_tot <= 1e-12 * np.abs(s[..., 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(degenerate, np.nan, 1.0 - s[..., 2] / np.where(degenerate, 1.0, ss_tot))


MEAN = SumStatistic("mean", lambda x: np.asarray(x, float)[:, None], lambda s, c: s[..., 0] / c, "arithmetic mean")
MAE = SumStatistic("mae", lambda y, p: np.abs(np.asarray(y, float) - p)[:, None], lambda s, c: s[..., 0] / c,
                   "mean absolute error, mean(|y - y_hat|)", (0.0, np.inf))
RMSE = SumStatistic("rmse", lambda y, p: np.square(np.asarray(y, float) - p)[:, None],
                    lambda s, c: np.sqrt(s[..., 0] / c), "root mean squared error, sqrt(mean((y - y_hat)^2))",
                    (0.0, np.inf))
R2 = SumStatistic(
    "r2",
    lambda y, p: np.column_stack([y, np.square(y), np.square(np.asarray(y, float) - p)]).astype(float),
    _r2_final,
    "coefficient of determination as sklearn.metrics.r2_score: 1 - SS_res / SS_tot (not squared Pearson r)",
    (-np.inf, 1.0),
)
DICE = SumStatistic(
    "dice",
    lambda inter, total: np.column_stack([inter, total]).astype(float),
    lambda s, c: 2.0 * s[..., 0] / s[..., 1],
    "Dice pooled over pixels: 2 sum|P & T| / (sum|P| + sum|T|), arguments (|P & T|, |P| + |T|) per row",
    (0.0, 1.0),
)


def _r2_lm_final(s: np.ndarray, c: np.ndarray) -> np.ndarray:
    sxy = s[..., 4] - s[..., 0] * s[..., 1] / c
    sxx = s[..., 2] - s[..., 0] ** 2 / c
    syy = s[..., 3] - s[..., 1] ** 2 / c
    degenerate = (sxx <= 1e-12 * np.abs(s[..., 2])) | (syy <= 1e-12 * np.abs(s[..., 3]))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = sxy ** 2 / np.where(degenerate, 1.0, sxx * syy)
    return np.where(degenerate, np.nan, np.minimum(out, 1.0))


R2_LM = SumStatistic(
    "r2_lm",
    lambda y, p: np.column_stack([y, p, np.square(y), np.square(p), np.asarray(y, float) * p]).astype(float),
    _r2_lm_final,
    "R² of the least-squares line of y on y_hat, R's summary(lm(y ~ y_hat))$r.squared: the squared Pearson r",
    (0.0, 1.0),
)
SUM_STATISTICS = {s.name: s for s in (MEAN, MAE, RMSE, R2, R2_LM, DICE)}


def mae(y: np.ndarray, p: np.ndarray) -> float:
    return MAE(np.asarray(y, float), np.asarray(p, float))


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    return RMSE(np.asarray(y, float), np.asarray(p, float))


def r2(y: np.ndarray, p: np.ndarray) -> float:
    """sklearn.metrics.r2_score: 1 - SS_res/SS_tot."""
    return R2(np.asarray(y, float), np.asarray(p, float))


def r2_lm(y: np.ndarray, p: np.ndarray) -> float:
    """R's summary(lm(y ~ p))$r.squared (the squared Pearson r); NaN when a side is constant."""
    return R2_LM(np.asarray(y, float), np.asarray(p, float))


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r; NaN (undefined, no warning) when either side is constant."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    xc, yc = x - x.mean(), y - y.mean()
    denominator = np.sqrt((xc @ xc) * (yc @ yc))
    return float((xc @ yc) / denominator) if denominator > 0 else float("nan")


def midrank(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (Sun & Xu's midranks)."""
    x = np.asarray(x)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # Boundaries of runs of equal values.
    diff = np.concatenate([[True], xs[1:] != xs[:-1], [True]])
    starts = np.flatnonzero(diff)
    run_rank = (starts[:-1] + starts[1:] + 1) / 2.0  # mean of 1-based positions start+1..end
    ranks_sorted = np.repeat(run_rank, np.diff(starts))
    out = np.empty(len(x), dtype=np.float64)
    out[order] = ranks_sorted
    return out


def auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney), label 1 positive, larger score = positive; ties 1/2."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, float)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        raise ValueError("AUC needs both classes (got only one)")
    r = midrank(s)
    return float((r[y].sum() - m * (m + 1) / 2) / (m * n))
