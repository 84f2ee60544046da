"""Metrics over several binary labels of one row (CT-RATE's 18 abnormalities): the macro AUROC.

Each label ``x`` is a 0/1 column ``x`` with its probability in ``x<score_suffix>`` (``x_prob``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stats
from ..stats.metrics import auc
from .metrics import Context, _col, _comparison, _entry, register_metric

MIN_PER_CLASS = 2  # as the per-label `auc` metric: an AUC needs at least 2 cases and 2 controls


def _label_arrays(rows: pd.DataFrame, args: dict) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    labels = list(args["labels"])
    suffix = args.get("score_suffix", "_prob")
    ys = []
    for name in labels:
        y = _col(rows, name)
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"column {name!r} must hold 0/1")
        ys.append(y.astype(int))
    return labels, ys, [_col(rows, name + suffix) for name in labels]


def scored_labels(labels: list[str], ys: list[np.ndarray]) -> tuple[list[int], list[str]]:
    """Indices of the labels with an AUC (>= 2 cases and >= 2 controls) and the names of the others."""
    keep = [i for i, y in enumerate(ys) if MIN_PER_CLASS <= y.sum() <= len(y) - MIN_PER_CLASS]
    return keep, [labels[i] for i in range(len(labels)) if i not in keep]


def macro_auc(*arrays: np.ndarray) -> float:
    """Mean AUC over labels given as (y_1, score_1, y_2, score_2, ...); a label left with one class
    (in a bootstrap resample) is left out of that mean."""
    values = [auc(y, s) for y, s in zip(arrays[0::2], arrays[1::2]) if 0 < y.sum() < len(y)]
    return float(np.mean(values)) if values else float("nan")


@register_metric("macro_auc")
class MacroAUC:
    """Unweighted mean of the per-label AUROCs over the labels with both classes in the scored split.

    CI: bootstrap resampling whole patients (several reconstructions of one patient move together),
    at most 1999 resamples; a label with fewer than 2 cases or 2 controls in the split gets no AUC
    and is listed in ``labels_skipped`` (never scored 0.5 or NaN inside the mean).
    """

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        labels, ys, scores = _label_arrays(rows, args)
        keep, skipped = scored_labels(labels, ys)
        info = {"labels_scored": [labels[i] for i in keep], "labels_skipped": skipped}
        if skipped:
            info["note"] = f"skipped (fewer than {MIN_PER_CLASS} cases or controls): {', '.join(skipped)}"
        if not keep:
            return {"value": None, **info}
        arrays = [a for i in keep for a in (ys[i], scores[i])]
        r = stats.bootstrap_ci(macro_auc, *arrays, level=ctx.level, method=ctx.method,
                               n_resamples=min(ctx.n_resamples, 1999), groups=ctx.groups, seed=0)
        return {**_entry(r, ctx), **info}

    def compare(self, a: pd.DataFrame, b: pd.DataFrame, args: dict, ctx: Context, alternative: str) -> dict | None:
        labels, ys, sa = _label_arrays(a, args)
        _, _, sb = _label_arrays(b, args)
        keep, _ = scored_labels(labels, ys)
        if not keep:
            return None
        r = stats.paired_bootstrap_diff_rows(macro_auc, [x for i in keep for x in (ys[i], sa[i])],
                                             [x for i in keep for x in (ys[i], sb[i])], groups=ctx.groups,
                                             level=ctx.level, n_resamples=min(ctx.n_resamples, 1999),
                                             alternative=alternative)
        return _comparison(r, r.n_resamples)
