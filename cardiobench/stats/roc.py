"""AUC intervals and paired AUC tests that respect patients.

One row per patient: DeLong (pROC's ``ci.auc`` and paired ``roc.test``), exact to pROC. Several rows
per patient (clips, beats, reconstructions): DeLong's variance assumes independent rows and is too
narrow, so whole patients are resampled instead, within class strata when every patient has one
class (a class-imbalanced bootstrap then always keeps its number of positive patients).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .bootstrap import Alternative, Method, bootstrap_ci, paired_bootstrap_diff
from .delong import delong_auc, delong_test


def has_clusters(groups: Sequence | None) -> bool:
    """Whether some cluster (patient) has more than one row."""
    return groups is not None and len(np.unique(np.asarray(groups))) < len(groups)


def class_strata(y_true: Sequence, groups: Sequence) -> np.ndarray | None:
    """Row-level strata for a class-stratified cluster bootstrap: the class itself when no patient
    holds both classes; None (no stratification possible) when one does."""
    y, g = np.asarray(y_true).astype(int), np.asarray(groups)
    _, codes = np.unique(g, return_inverse=True)
    lo = np.full(codes.max() + 1, 2)
    hi = np.full(codes.max() + 1, -1)
    np.minimum.at(lo, codes, y)
    np.maximum.at(hi, codes, y)
    return y if np.all(lo == hi) else None


def auc_ci(y_true: Sequence, score: Sequence, groups: Sequence | None = None, level: float = 0.95,
           n_resamples: int = 9999, method: Method = "bca", seed: int = 0) -> dict:
    """AUC of ``score`` for ``y_true == 1`` with its CI, as a metrics.json entry.

    DeLong when each patient has one row, else a patient-level bootstrap stratified by class
    (``resampled`` and ``method`` say which was used).
    """
    y = np.asarray(y_true).astype(int)
    if not has_clusters(groups):
        r = delong_auc(y, score, level=level)
        return {"value": r.auc, "low": r.low, "high": r.high, "level": level, "method": "delong", "n": len(y),
                "n_cases": r.n_cases, "n_controls": r.n_controls}
    strata = class_strata(y, groups)
    r = bootstrap_ci("auc", y, score, level=level, method=method, n_resamples=n_resamples, groups=groups,
                     strata=strata, seed=seed)
    return {**r.as_dict(), "n_cases": int(y.sum()), "n_controls": int(len(y) - y.sum()),
            "resampled": "patients, stratified by class" if strata is not None else
                         "patients (not stratified: some patients hold both classes)"}


def auc_paired_test(y_true: Sequence, score_a: Sequence, score_b: Sequence, groups: Sequence | None = None,
                    level: float = 0.95, n_resamples: int = 9999, alternative: Alternative = "two-sided",
                    seed: int = 0) -> dict:
    """AUC(a) - AUC(b) on the same rows: paired DeLong, or a paired patient bootstrap with clusters."""
    y = np.asarray(y_true).astype(int)
    if not has_clusters(groups):
        r = delong_test(y, score_a, score_b, alternative=alternative, level=level)
        two = r.p_value if alternative == "two-sided" else delong_test(y, score_a, score_b, level=level).p_value
        # Wald interval and z-test share one SE, so they agree; the interval stays inside [-1, 1]
        return dict(a=r.auc_a, b=r.auc_b, diff=r.diff, low=max(-1.0, r.low), high=min(1.0, r.high),
                    p_value=r.p_value, p_two_sided=two, test="paired DeLong (pROC roc.test)")
    r = paired_bootstrap_diff("auc", y, score_a, score_b, groups=groups, strata=class_strata(y, groups),
                              level=level, n_resamples=n_resamples, method="percentile", seed=seed,
                              alternative=alternative)
    out = dict(a=r.estimate_a, b=r.estimate_b, diff=r.diff, low=r.low, high=r.high, p_value=r.p_value,
               p_floor=r.p_floor, p_two_sided=r.p_two_sided,
               test=f"paired patient bootstrap of the AUC difference ({n_resamples} resamples)")
    return {**out, "note": r.note} if r.note else out
