"""DeLong AUC variance, CI and tests, as pROC computes them (Sun & Xu 2014 midrank algorithm).

Label 1 = case (positive); larger score = more likely a case. The direction is never flipped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from scipy import stats as ss

from .metrics import midrank

Alternative = Literal["two-sided", "greater", "less"]


@dataclass(frozen=True)
class DelongAUC:
    auc: float
    variance: float
    low: float
    high: float
    level: float
    n_cases: int
    n_controls: int

    def __repr__(self) -> str:
        return (f"DelongAUC({self.auc:.4f} [{self.low:.4f}, {self.high:.4f}], {self.level:.0%}, "
                f"{self.n_cases} cases / {self.n_controls} controls)")


@dataclass(frozen=True)
class DelongTest:
    auc_a: float
    auc_b: float
    diff: float
    statistic: float
    p_value: float
    low: float
    high: float
    level: float
    alternative: str

    def __repr__(self) -> str:
        return (f"DelongTest(AUC {self.auc_a:.4f} vs {self.auc_b:.4f}, diff {self.diff:.4f} "
                f"[{self.low:.4f}, {self.high:.4f}], Z={self.statistic:.4f}, p={self.p_value:.4g}, {self.alternative})")


@dataclass(frozen=True)
class DelongUnpairedTest:
    auc_a: float
    auc_b: float
    statistic: float
    df: float
    p_value: float
    alternative: str

    def __repr__(self) -> str:
        return (f"DelongUnpairedTest(AUC {self.auc_a:.4f} vs {self.auc_b:.4f}, D={self.statistic:.4f}, "
                f"df={self.df:.1f}, p={self.p_value:.4g}, {self.alternative})")


def _split(y_true: Sequence, scores: Sequence[Sequence]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError("y_true must be one-dimensional")
    if not np.isin(y, [0, 1, True, False]).all():
        raise ValueError("y_true must be binary (1 = case, 0 = control)")
    s = np.asarray(scores, dtype=float)
    if s.shape[-1] != len(y):
        raise ValueError(f"length mismatch: {len(y)} labels, {s.shape[-1]} scores")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or inf")
    y = y.astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise ValueError(f"need at least 2 cases and 2 controls, got {m} cases and {n} controls")
    return s[:, y], s[:, ~y]


def _midrank_sorted(xs: np.ndarray) -> np.ndarray:
    """Midranks (1-based, ties averaged) of an already sorted array, in O(n)."""
    edge = np.flatnonzero(np.concatenate([[True], xs[1:] != xs[:-1], [True]]))
    return np.repeat((edge[:-1] + edge[1:] + 1) / 2.0, np.diff(edge))


def placements(cases: np.ndarray, controls: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs (k,), case placements V10 (k, m) and control placements V01 (k, n) by midranks.

    One sort per score: the within-class midranks come from the classes' runs in the joint
    sorted order (Sun & Xu need three sorts; at n = 10^6 the sorts are most of the time).
    """
    k, m = cases.shape
    n = controls.shape[1]
    v10 = np.empty((k, m))
    v01 = np.empty((k, n))
    aucs = np.empty(k)
    for r in range(k):
        z = np.concatenate([cases[r], controls[r]])
        order = np.argsort(z)
        zs = z[order]
        is_case = order < m
        tz = _midrank_sorted(zs)
        tz_case, tz_ctrl = tz[is_case], tz[~is_case]
        v10[r, order[is_case]] = (tz_case - _midrank_sorted(zs[is_case])) / n
        v01[r, order[~is_case] - m] = 1.0 - (tz_ctrl - _midrank_sorted(zs[~is_case])) / m
        # Mann-Whitney U from midranks is an exact multiple of 1/2: one division gives the exact AUC.
        aucs[r] = (tz_case.sum() - m * (m + 1) / 2) / (m * n)
    return aucs, v10, v01


def delong_cov(y_true: Sequence, *scores: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance matrix S10/m + S01/n."""
    cases, controls = _split(y_true, scores)
    aucs, v10, v01 = placements(cases, controls)
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / cases.shape[1] + s01 / controls.shape[1]


def delong_auc(y_true: Sequence, score: Sequence, level: float = 0.95) -> DelongAUC:
    """AUC with its DeLong variance and CI (pROC ``ci.auc(method="delong")``: normal, clipped to [0, 1])."""
    aucs, cov = delong_cov(y_true, score)
    auc, var = float(aucs[0]), float(cov[0, 0])
    half = ss.norm.ppf(1 - (1 - level) / 2) * np.sqrt(var)
    y = np.asarray(y_true).astype(bool)
    return DelongAUC(auc, var, max(0.0, auc - half), min(1.0, auc + half), level, int(y.sum()), int((~y).sum()))


def _p(stat: float, alternative: Alternative, dist) -> float:
    if alternative == "two-sided":
        return float(2 * dist.sf(abs(stat)))
    if alternative == "greater":
        return float(dist.sf(stat))
    if alternative == "less":
        return float(dist.cdf(stat))
    raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', not {alternative!r}")


def delong_test(y_true: Sequence, score_a: Sequence, score_b: Sequence, alternative: Alternative = "two-sided",
                level: float = 0.95) -> DelongTest:
    """Paired DeLong test of AUC(a) - AUC(b) on the same cases (pROC ``roc.test(paired=TRUE)``)."""
    aucs, cov = delong_cov(y_true, score_a, score_b)
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    sd = np.sqrt(max(var, 0.0))
    z = 0.0 if sd == 0 and diff == 0 else diff / sd
    half = ss.norm.ppf(1 - (1 - level) / 2) * sd
    return DelongTest(float(aucs[0]), float(aucs[1]), diff, float(z), _p(z, alternative, ss.norm),
                      diff - half, diff + half, level, alternative)


def delong_test_unpaired(y_a: Sequence, score_a: Sequence, y_b: Sequence, score_b: Sequence,
                         alternative: Alternative = "two-sided") -> DelongUnpairedTest:
    """Unpaired DeLong test (pROC ``roc.test(paired=FALSE, method="delong")``): Welch-type t."""
    parts = []
    for y, s in ((y_a, score_a), (y_b, score_b)):
        cases, controls = _split(y, [s])
        auc, v10, v01 = placements(cases, controls)
        parts.append((float(auc[0]), v10[0], v01[0]))
    # pROC's Welch-type df uses each curve's variance and its total sample size (cases + controls).
    var = [np.var(v10, ddof=1) / len(v10) + np.var(v01, ddof=1) / len(v01) for _, v10, v01 in parts]
    size = [len(v10) + len(v01) for _, v10, v01 in parts]
    d = (parts[0][0] - parts[1][0]) / np.sqrt(var[0] + var[1])
    df = (var[0] + var[1]) ** 2 / (var[0] ** 2 / (size[0] - 1) + var[1] ** 2 / (size[1] - 1))
    return DelongUnpairedTest(parts[0][0], parts[1][0], float(d), float(df), _p(d, alternative, ss.t(df)), alternative)
