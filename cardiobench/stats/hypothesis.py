"""Thin wrappers over the libraries' tests, with every choice that changes the answer made explicit.

Library defaults drift between versions (scipy's Wilcoxon ``method``, statsmodels' default
multiple-testing method is Holm-Sidak), so each wrapper names the method it uses and returns it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from scipy import stats as ss

from .bootstrap import check_arrays


@dataclass(frozen=True)
class TestResult:
    test: str
    statistic: float
    p_value: float
    method: str
    n: int


def wilcoxon_signed_rank(x: Sequence, y: Sequence, method: Literal["exact", "approx"] | None = None,
                         alternative: str = "two-sided") -> TestResult:
    """Wilcoxon signed-rank test of ``x - y`` (scipy), zeros dropped (``zero_method="wilcox"``).

    ``method=None`` picks ``exact`` for n <= 50 without ties or zeros and ``approx`` (normal with
    tie correction) otherwise, and passes it to scipy explicitly.
    """
    x, y = check_arrays(x, y, names=["x", "y"])
    d = x - y
    if method is None:
        nz = d[d != 0]
        method = "exact" if len(nz) == len(d) and len(d) <= 50 and len(np.unique(np.abs(nz))) == len(nz) else "approx"
    r = ss.wilcoxon(d, zero_method="wilcox", method=method, alternative=alternative)
    return TestResult("wilcoxon_signed_rank", float(r.statistic), float(r.pvalue), method, len(d))


def mcnemar(y_true: Sequence, pred_a: Sequence, pred_b: Sequence) -> TestResult:
    """Exact McNemar test (binomial on the discordant pairs, statsmodels) of two classifiers' accuracy."""
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    y, a, b = (np.asarray(v).astype(bool) for v in (y_true, pred_a, pred_b))
    if not len(y) == len(a) == len(b):
        raise ValueError(f"length mismatch: {len(y)} labels, {len(a)} and {len(b)} predictions")
    ca, cb = a == y, b == y
    table = [[np.sum(ca & cb), np.sum(ca & ~cb)], [np.sum(~ca & cb), np.sum(~ca & ~cb)]]
    r = sm_mcnemar(table, exact=True)
    return TestResult("mcnemar", float(r.statistic), float(r.pvalue), "exact binomial", len(y))


def holm(p_values: Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm step-down adjusted p-values and rejections (statsmodels ``method="holm"``, not Holm-Sidak)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    if len(p) == 0:
        return p, p.astype(bool)
    if np.isnan(p).any():
        raise ValueError("p-values contain NaN")
    reject, adjusted, _, _ = multipletests(p, alpha=alpha, method="holm")
    return adjusted, reject


@dataclass(frozen=True)
class ICC:
    kind: str
    icc: float
    low: float
    high: float
    p_value: float
    n_targets: int


def icc(data, targets: str, raters: str, ratings: str, kind: str = "ICC(A,1)") -> ICC:
    """Intraclass correlation from pingouin (long format) with its 95 % CI.

    ``kind`` is pingouin's Type label: ICC(1,1), ICC(A,1) (absolute agreement, two-way random,
    McGraw & Wong), ICC(C,1) (consistency), and the ``k`` (mean of raters) forms.
    """
    import pingouin as pg

    table = pg.intraclass_corr(data=data, targets=targets, raters=raters, ratings=ratings).set_index("Type")
    if kind not in table.index:
        raise ValueError(f"unknown ICC kind {kind!r}; pingouin gives {', '.join(table.index)}")
    row = table.loc[kind]
    low, high = row["CI95"]
    return ICC(kind, float(row["ICC"]), float(low), float(high), float(row["pval"]), int(data[targets].nunique()))
