"""Metrics of a binary target's probability (AUPRC, Brier score, sensitivity and specificity at a
threshold chosen on VAL) and the Bland-Altman agreement of a regression target (chest-CT task)."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from .. import stats
from .registry import Context, _col, _comparison, _entry, register_metric


def _binary(rows: pd.DataFrame, args: dict) -> tuple[np.ndarray, np.ndarray]:
    y = _col(rows, args["label"])
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"column {args['label']!r} must hold 0/1")
    return y.astype(int), _col(rows, args["score"])


def _two_classes(y: np.ndarray, ctx: Context, what: str) -> dict | None:
    if 2 <= y.sum() <= len(y) - 2:
        return None
    return {"value": None, "note": f"not computed: {int(y.sum())} of {len(y)} {ctx.samples} have {what} = 1"}


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """sklearn.metrics.average_precision_score (step-wise area under the precision-recall curve);
    NaN for a resample without a positive."""
    return float(average_precision_score(y, score)) if 0 < y.sum() < len(y) else float("nan")


average_precision.bounds = (0.0, 1.0)  # no interval leaves it (stats.bootstrap.statistic_bounds)


@register_metric("auprc")
class AUPRC:
    """Average precision with a class-stratified bootstrap CI; paired bootstrap of the difference."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        y, s = _binary(rows, args)
        empty = _two_classes(y, ctx, args["label"])
        if empty:
            return empty
        r = stats.bootstrap_ci(average_precision, y, s, level=ctx.level, method=ctx.method,
                               n_resamples=min(ctx.n_resamples, 1999), groups=ctx.groups, strata=y, seed=0)
        return {**_entry(r, ctx), "prevalence": float(y.mean())}

    def compare(self, a: pd.DataFrame, b: pd.DataFrame, args: dict, ctx: Context, alternative: str) -> dict | None:
        y, sa = _binary(a, args)
        _, sb = _binary(b, args)
        if _two_classes(y, ctx, args["label"]):
            return None
        r = stats.paired_bootstrap_diff_rows(average_precision, [y, sa], [y, sb], groups=ctx.groups, strata=y,
                                             level=ctx.level, n_resamples=min(ctx.n_resamples, 1999),
                                             alternative=alternative)
        return _comparison(r, r.n_resamples)


@register_metric("brier")
class Brier:
    """Brier score: mean of (probability - outcome)^2; bootstrap CI and paired bootstrap."""

    def _sq(self, rows: pd.DataFrame, args: dict) -> np.ndarray:
        y, p = _binary(rows, args)
        if ((p < 0) | (p > 1)).any():
            raise ValueError(f"column {args['score']!r} must hold probabilities in [0, 1]")
        return (p - y) ** 2

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        r = stats.bootstrap_ci("mean", self._sq(rows, args), level=ctx.level, method=ctx.method,
                               n_resamples=ctx.n_resamples, groups=ctx.groups, seed=0)
        y, _ = _binary(rows, args)
        return {**_entry(r, ctx), "reference_prevalence_only": float(y.mean() * (1 - y.mean()))}

    def compare(self, a: pd.DataFrame, b: pd.DataFrame, args: dict, ctx: Context, alternative: str) -> dict:
        r = stats.paired_bootstrap_diff_rows("mean", [self._sq(a, args)], [self._sq(b, args)], groups=ctx.groups,
                                             level=ctx.level, n_resamples=ctx.n_resamples, alternative=alternative)
        return _comparison(r, ctx.n_resamples)


@register_metric("rate_at_threshold")
class RateAtThreshold:
    """Sensitivity or specificity of ``score >= threshold`` (the threshold a column of the predictions,
    chosen on VAL by the task), with a Wilson score interval (one row per patient) or a patient
    bootstrap; no value when the predictions carry no threshold (e.g. external ones)."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict | None:
        col = args["threshold"]
        if col not in rows.columns or rows[col].isna().all():
            return {"value": None, "note": f"no {col!r} column: the threshold is chosen on VAL by the task"}
        y, s = _binary(rows, args)
        t = float(rows[col].dropna().iloc[0])
        which = args["which"]
        mask = y == 1 if which == "sensitivity" else y == 0
        if mask.sum() < 2:
            return {"value": None, "note": f"fewer than 2 {'positives' if which == 'sensitivity' else 'negatives'}"}
        hit = (s[mask] >= t) if which == "sensitivity" else (s[mask] < t)
        if ctx.groups is None:
            from statsmodels.stats.proportion import proportion_confint

            low, high = proportion_confint(int(hit.sum()), int(mask.sum()), alpha=1 - ctx.level, method="wilson")
            return {"value": float(hit.mean()), "low": float(low), "high": float(high), "level": ctx.level,
                    "method": "wilson", "n": int(mask.sum()), "threshold": t, "k": int(hit.sum())}
        r = stats.bootstrap_ci("mean", hit.astype(float), level=ctx.level, method="percentile",
                               n_resamples=ctx.n_resamples, groups=ctx.groups[mask], seed=0)
        return {**_entry(r, ctx.subset(mask)), "threshold": t}


@register_metric("agreement")
class Agreement:
    """Bland-Altman of prediction - target: bias, SD, limits of agreement with exact CIs, proportional
    bias (``stats.bland_altman``), and the Pearson r; the value reported is the bias."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        t, p = _col(rows, args["target"]), _col(rows, args["prediction"])
        ba = stats.bland_altman(p, t, level=ctx.level)
        d = asdict(ba)
        r = stats.pearson_r(t, p) if np.std(t) > 0 and np.std(p) > 0 else None
        return {**d, "value": d["bias"], "low": d["bias_low"], "high": d["bias_high"], "pearson_r": r,
                "definition": args.get("definition", "")}
