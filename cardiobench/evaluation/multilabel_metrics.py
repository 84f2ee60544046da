"""Metrics over several binary labels of one row (CT-RATE's 18 abnormalities): the macro AUROC and
CT-CLIP's zero-shot threshold metrics (accuracy, specificity, sensitivity, weighted F1 and precision).

Each label ``x`` is a 0/1 column ``x`` with its probability in ``x<score_suffix>`` (``x_prob``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stats
from ..errors import CardiobenchError
from ..stats.metrics import auc
from .registry import Context, _col, _comparison, _entry, register_metric

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


def _scored_labels(rows: pd.DataFrame, args: dict) -> tuple[list[str], list[np.ndarray], list[np.ndarray],
                                                              list[int], dict]:
    """Labels, 0/1 arrays, scores, the indices of the scored labels and the entry's
    ``labels_scored`` / ``labels_skipped`` (+ ``note``) record."""
    labels, ys, scores = _label_arrays(rows, args)
    keep, skipped = scored_labels(labels, ys)
    info = {"labels_scored": [labels[i] for i in keep], "labels_skipped": skipped}
    if skipped:
        info["note"] = f"skipped (fewer than {MIN_PER_CLASS} cases or controls): {', '.join(skipped)}"
    return labels, ys, scores, keep, info


def macro_auc(*arrays: np.ndarray) -> float:
    """Mean AUC over labels given as (y_1, score_1, y_2, score_2, ...); a label left with one class
    (in a bootstrap resample) is left out of that mean."""
    values = [auc(y, s) for y, s in zip(arrays[0::2], arrays[1::2]) if 0 < y.sum() < len(y)]
    return float(np.mean(values)) if values else float("nan")


macro_auc.bounds = (0.0, 1.0)  # no interval leaves it (stats.bootstrap.statistic_bounds)


@register_metric("macro_auc")
class MacroAUC:
    """Unweighted mean of the per-label AUROCs over the labels with both classes in the scored split.

    CI: bootstrap resampling whole patients (several reconstructions of one patient move together),
    at most 1999 resamples; a label with fewer than 2 cases or 2 controls in the split gets no AUC
    and is listed in ``labels_skipped`` (never scored 0.5 or NaN inside the mean).
    """

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        labels, ys, scores, keep, info = _scored_labels(rows, args)
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


# --- CT-CLIP's zero-shot threshold metrics --------------------------------------------------------

THRESHOLD_QUANTITIES = ("accuracy", "specificity", "sensitivity", "f1_weighted", "precision_weighted")


def closest_point_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per column of ``y`` (0/1) and ``s`` (scores), both (n, L): the ROC point closest to (0, 1).

    The candidates are exactly the thresholds ``sklearn.metrics.roc_curve(y, s)`` returns (defaults,
    so ``drop_intermediate=True``): +inf (predict no positive), then every distinct score from the
    largest down, less the points sklearn drops as collinear with their neighbours. The distance is
    ``sqrt(fpr**2 + (1 - tpr)**2)`` computed as from roc_curve's fpr and tpr; among equally close
    points the first one, i.e. the largest threshold, wins (``np.argmin``). Vectorised: one sort of
    each column, then cumulative sums give the confusion counts at every candidate at once.

    Returns ``(tp, fp, pos, neg, threshold)``, each of length L (floats; threshold +inf where the
    closest point predicts no positive). A column with one class gets NaN distances and counts of
    no meaning: callers drop it (``pos == 0`` or ``neg == 0``).
    """
    n, n_labels = s.shape
    order = np.argsort(-s, axis=0, kind="stable")
    s_sorted = np.take_along_axis(s, order, axis=0)
    tps = np.cumsum(np.take_along_axis(y, order, axis=0), axis=0, dtype=float)
    fps = np.arange(1, n + 1, dtype=float)[:, None] - tps
    pos, neg = tps[-1], fps[-1]
    # The last row of each run of tied scores is one point of the curve (sklearn's threshold_idxs).
    end = np.ones((n, n_labels), dtype=bool)
    end[:-1] = s_sorted[:-1] != s_sorted[1:]
    # Neighbouring curve points (previous and next run ends) of every row, for drop_intermediate.
    rank = np.arange(n)[:, None]
    prev = np.maximum.accumulate(np.where(end, rank, -1), axis=0)
    prev = np.vstack([np.full((1, n_labels), -1), prev[:-1]])
    nxt = np.minimum.accumulate(np.where(end, rank, n)[::-1], axis=0)[::-1]
    nxt = np.vstack([nxt[1:], np.full((1, n_labels), n)])
    inner = (prev >= 0) & (nxt < n)
    p, q = np.clip(prev, 0, n - 1), np.clip(nxt, 0, n - 1)
    tp_p, tp_q = np.take_along_axis(tps, p, axis=0), np.take_along_axis(tps, q, axis=0)
    fp_p, fp_q = np.take_along_axis(fps, p, axis=0), np.take_along_axis(fps, q, axis=0)
    collinear = ((tp_q - tps) == (tps - tp_p)) & ((fp_q - fps) == (fps - fp_p))
    candidate = end & ~(inner & collinear)
    with np.errstate(divide="ignore", invalid="ignore"):
        fpr, tpr = fps / neg, tps / pos
        dist = np.sqrt(fpr**2 + (1 - tpr) ** 2)
    dist = np.where(candidate, dist, np.inf)
    # Row 0: the +inf threshold, the point (0, 0), at distance sqrt(0 + 1) = 1.
    dist = np.vstack([np.ones((1, n_labels)), dist])
    best = np.argmin(dist, axis=0)                 # first minimum: the largest threshold among ties
    row = np.clip(best - 1, 0, n - 1)[None]
    none = best == 0
    tp = np.where(none, 0.0, np.take_along_axis(tps, row, axis=0)[0])
    fp = np.where(none, 0.0, np.take_along_axis(fps, row, axis=0)[0])
    threshold = np.where(none, np.inf, np.take_along_axis(s_sorted, row, axis=0)[0])
    return tp, fp, pos, neg, threshold


def threshold_quantities(y: np.ndarray, s: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per column of (n, L) labels and scores, with prediction = score >= the closest-point threshold:
    accuracy, specificity TN/(TN+FP), sensitivity TP/(TP+FN), and the support-weighted F1 and
    precision of sklearn's ``average="weighted"`` (a class predicted for no row has precision 0, as
    sklearn's default zero_division). NaN for a column with one class. Also the thresholds."""
    tp, fp, pos, neg, threshold = closest_point_counts(y, s)
    fn, tn = pos - tp, neg - fp
    n = pos + neg
    with np.errstate(divide="ignore", invalid="ignore"):
        f1_pos = 2 * tp / (2 * tp + fp + fn)
        f1_neg = 2 * tn / (2 * tn + fn + fp)
        prec_pos = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        prec_neg = np.where(tn + fn > 0, tn / np.maximum(tn + fn, 1), 0.0)
        out = {"accuracy": (tp + tn) / n, "specificity": tn / neg, "sensitivity": tp / pos,
               "f1_weighted": (pos * f1_pos + neg * f1_neg) / n,
               "precision_weighted": (pos * prec_pos + neg * prec_neg) / n}
    one_class = (pos == 0) | (neg == 0)
    return {k: np.where(one_class, np.nan, v) for k, v in out.items()}, threshold


class _ThresholdMean:
    """Statistic over (y_1, score_1, y_2, score_2, ...): mean over labels of one threshold quantity,
    the threshold re-chosen on the data given; a label with one class is left out of the mean."""

    def __init__(self, which: str):
        self.which = self.name = which

    def __call__(self, *arrays: np.ndarray) -> float:
        values = threshold_quantities(np.column_stack(arrays[0::2]), np.column_stack(arrays[1::2]))[0][self.which]
        values = values[np.isfinite(values)]
        return float(values.mean()) if len(values) else float("nan")


def _which(args: dict) -> str:
    which = args.get("which")
    if which not in THRESHOLD_QUANTITIES:
        raise CardiobenchError(f"ctclip_threshold: which must be one of {', '.join(THRESHOLD_QUANTITIES)}, "
                               f"not {which!r}")
    return which


@register_metric("ctclip_threshold")
class CTCLIPThreshold:
    """CT-CLIP's zero-shot threshold metrics (Hamamci et al., CT-RATE / CT-CLIP): per label, the
    threshold at the ROC point closest to (0, 1), then ``which`` of accuracy, specificity,
    sensitivity, weighted F1 (``f1_weighted``, sklearn ``f1_score(average="weighted")``) or
    weighted precision (``precision_weighted``, sklearn ``precision_score(average="weighted")``)
    of ``prob >= threshold``; the value is the unweighted mean over the scored labels.

    Optimistic by design: the threshold is chosen on the very split being scored, not on a
    validation split, so these numbers overstate what a threshold fixed in advance would give.

    Threshold: minimises ``sqrt(fpr**2 + (1 - tpr)**2)`` over the thresholds of
    ``sklearn.metrics.roc_curve`` (defaults: collinear points dropped, +inf for "no positive"); of
    equally close points the first, i.e. the largest threshold, is taken. (CT-CLIP's released
    ``find_threshold`` applies the same distance to a fixed grid ``np.linspace(0, 1, 100)`` with
    ``prob > t``, and its precision is sklearn's binary one: numbers from it may differ slightly.)

    args: ``labels`` (0/1 columns), ``score_suffix`` (default ``_prob``), ``which``. A label with
    fewer than 2 cases or 2 controls is skipped and listed in ``labels_skipped``. The entry also has
    ``per_label`` {label: {value, threshold}} (threshold None where no row is called positive).
    CI: bootstrap of whole patients (``ctx.groups``) of the whole procedure, the threshold re-chosen
    in every resample; a label with one class in a resample is left out of that resample's mean; at
    most 499 resamples.
    """

    MAX_RESAMPLES = 499

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        which = _which(args)
        labels, ys, scores, keep, info = _scored_labels(rows, args)
        if not keep:
            return {"value": None, **info}
        values, thresholds = threshold_quantities(np.column_stack([ys[i] for i in keep]),
                                                  np.column_stack([scores[i] for i in keep]))
        per_label = {labels[i]: {"value": float(v), "threshold": float(t) if np.isfinite(t) else None}
                     for i, v, t in zip(keep, values[which], thresholds)}
        arrays = [a for i in keep for a in (ys[i], scores[i])]
        r = stats.bootstrap_ci(_ThresholdMean(which), *arrays, level=ctx.level, method=ctx.method,
                               n_resamples=min(ctx.n_resamples, self.MAX_RESAMPLES), groups=ctx.groups, seed=0)
        return {**_entry(r, ctx), "per_label": per_label, **info}

    def compare(self, a: pd.DataFrame, b: pd.DataFrame, args: dict, ctx: Context, alternative: str) -> dict | None:
        which = _which(args)
        labels, ys, sa = _label_arrays(a, args)
        _, _, sb = _label_arrays(b, args)
        keep, _ = scored_labels(labels, ys)
        if not keep:
            return None
        n_resamples = min(ctx.n_resamples, self.MAX_RESAMPLES)
        r = stats.paired_bootstrap_diff_rows(_ThresholdMean(which), [x for i in keep for x in (ys[i], sa[i])],
                                             [x for i in keep for x in (ys[i], sb[i])], groups=ctx.groups,
                                             level=ctx.level, n_resamples=n_resamples, method=ctx.method,
                                             alternative=alternative)
        return _comparison(r, r.n_resamples)
