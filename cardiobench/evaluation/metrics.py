"""The built-in metrics of regression targets, AUC and pixel counts, and the one place that loads
every built-in metric module (binary, multilabel, volume), so that :func:`get_metric` sees them all.

The registry itself, :class:`Context` and the helpers metric modules share live in
:mod:`cardiobench.evaluation.registry` (re-exported here: ``from cardiobench.evaluation.metrics
import Context, get_metric`` keeps working). numpy/scipy/pandas only.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from .. import stats
from ..stats.roc import auc_ci, auc_paired_test
from . import binary_metrics, multilabel_metrics, volume_metrics  # noqa: F401  (register the row metrics)
from .registry import (METRICS, Context, Metric, _col, _comparison, _entry, get_metric, names,  # noqa: F401
                       register_metric)


class _Regression:
    """A statistic of (target, prediction) columns: bootstrap CI; paired bootstrap of the difference."""

    statistic: str | Callable = "mae"

    def _arrays(self, rows: pd.DataFrame, args: dict) -> tuple[np.ndarray, np.ndarray]:
        return _col(rows, args["target"]), _col(rows, args["prediction"])

    def undefined(self, y: np.ndarray, p: np.ndarray, ctx: Context) -> str:
        """Why the statistic cannot be computed on these rows ("" when it can)."""
        fn = stats.SUM_STATISTICS.get(self.statistic) if isinstance(self.statistic, str) else self.statistic
        if len(y) < 2:
            return f"not computed: {len(y)} {ctx.samples} (at least 2 needed)"
        if np.isfinite(fn(y, p)):
            return ""
        side = "true values" if np.ptp(y) == 0 else "predictions"
        return f"not computed: the {side} are all equal ({y[0] if side == 'true values' else p[0]:g}), so it is undefined"

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        y, p = self._arrays(rows, args)
        why = self.undefined(y, p, ctx)
        if why:
            return {"value": None, "n": len(y), "note": why}
        r = stats.bootstrap_ci(self.statistic, y, p, level=ctx.level, method=ctx.method,
                               n_resamples=ctx.n_resamples, groups=ctx.groups, seed=0)
        return _entry(r, ctx)

    def compare(self, a: pd.DataFrame, b: pd.DataFrame, args: dict, ctx: Context, alternative: str) -> dict | None:
        y, pa = self._arrays(a, args)
        _, pb = self._arrays(b, args)
        if self.undefined(y, pa, ctx) or self.undefined(y, pb, ctx):
            return None
        r = stats.paired_bootstrap_diff(self.statistic, y, pa, pb, groups=ctx.groups, level=ctx.level,
                                        n_resamples=ctx.n_resamples, alternative=alternative)
        return _comparison(r, ctx.n_resamples)


@register_metric("mae")
class MAE(_Regression):
    statistic = "mae"


@register_metric("rmse")
class RMSE(_Regression):
    statistic = "rmse"


@register_metric("r2")
class R2(_Regression):
    """sklearn.metrics.r2_score (1 - SS_res / SS_tot), not the squared Pearson r."""

    statistic = "r2"


@register_metric("r2_lm")
class R2LM(_Regression):
    """R's ``summary(lm(target ~ prediction))$r.squared``: the squared Pearson r (what EchoNet-Dynamic reports)."""

    statistic = "r2_lm"


@register_metric("pearson_r")
class PearsonR(_Regression):
    statistic = staticmethod(stats.pearson_r)


@register_metric("auc")
class AUC:
    """AUC of ``sign * score`` for the positive class: ``label`` itself (0/1), or ``label < below``.

    DeLong CI and paired DeLong test with one row per patient; a class-stratified patient
    bootstrap otherwise. Fewer than 2 cases or controls: no value, with a note.
    """

    def _arrays(self, rows: pd.DataFrame, args: dict) -> tuple[np.ndarray, np.ndarray]:
        label = _col(rows, args["label"])
        if "below" in args:
            label = label < float(args["below"])
        return label.astype(int), float(args.get("sign", 1)) * _col(rows, args["score"])

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        y, s = self._arrays(rows, args)
        if not 2 <= y.sum() <= len(y) - 2:
            what = f"{args['label']} < {args['below']:g}" if "below" in args else f"{args['label']} = 1"
            return {"value": None, "note": f"not computed: {int(y.sum())} of {len(y)} {ctx.samples} have {what}"}
        return auc_ci(y, s, groups=ctx.groups, level=ctx.level, n_resamples=ctx.n_resamples, method=ctx.method)

    def compare(self, a: pd.DataFrame, b: pd.DataFrame, args: dict, ctx: Context, alternative: str) -> dict | None:
        y, sa = self._arrays(a, args)
        _, sb = self._arrays(b, args)
        if not 2 <= y.sum() <= len(y) - 2:
            return None
        return auc_paired_test(y, sa, sb, groups=ctx.groups, level=ctx.level, n_resamples=ctx.n_resamples,
                               alternative=alternative)


@register_metric("mae_by_bin")
class MAEByBin:
    """MAE within bins of the true value (``edges``; the last bin is open-ended), each with its CI."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        y, p = _col(rows, args["target"]), _col(rows, args["prediction"])
        edges = list(args["edges"])
        bins = {}
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (y >= lo) & (y < hi)
            name = f"{lo:g}-{hi:g}" if hi < edges[-1] else f">={lo:g}"
            if sel.sum() >= 2:
                sub = ctx.subset(sel)
                r = stats.bootstrap_ci("mae", y[sel], p[sel], level=ctx.level, method=ctx.method,
                                       n_resamples=ctx.n_resamples, seed=0, groups=sub.groups)
                bins[name] = {**r.as_dict(), "ci_mode": ctx.label}
            else:
                bins[name] = {"value": float(np.abs(y[sel] - p[sel]).mean()) if sel.any() else None,
                              "n": int(sel.sum()), "note": f"fewer than 2 {ctx.samples}: no CI"}
        return bins


@register_metric("interval_coverage")
class IntervalCoverage:
    """Share of true values inside prediction +/- z(nominal) x ``std``: the coverage of a predictive interval."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        y, p, sd = _col(rows, args["target"]), _col(rows, args["prediction"]), _col(rows, args["std"])
        nominal = float(args.get("nominal", 0.90))
        z = float(scipy_stats.norm.ppf(0.5 + nominal / 2))
        inside = np.abs(y - p) <= z * sd
        lo, hi = scipy_stats.binomtest(int(inside.sum()), len(inside)).proportion_ci(ctx.level, method="wilson")
        return {"value": float(inside.mean()), "low": float(lo), "high": float(hi), "level": ctx.level,
                "method": "wilson", "n": len(y)}


@register_metric("spearman_sd_error")
class SpearmanSDError:
    """Spearman correlation of a predicted SD with the absolute error (does uncertainty track error?)."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        y, p, sd = _col(rows, args["target"]), _col(rows, args["prediction"]), _col(rows, args["std"])
        rho = scipy_stats.spearmanr(sd, np.abs(y - p))
        return {"value": float(rho.statistic), "p_value": float(rho.pvalue), "n": len(y)}


@register_metric("mean_predictor")
class MeanPredictor:
    """What predicting the test set's mean would score (the floor a model must beat)."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        y = _col(rows, args["target"])
        return {"mean_predictor_mae": float(np.abs(y - y.mean()).mean())}


def _count_arrays(rows: pd.DataFrame, structures: dict, which: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per row: summed overlap and summed (predicted + true) pixels over the chosen structures."""
    inter = sum(_col(rows, structures[s]["inter"]) for s in which)
    total = sum(_col(rows, structures[s]["pred"]) + _col(rows, structures[s]["truth"]) for s in which)
    return inter, total


def _which(args: dict) -> list[str]:
    return list(args.get("only") or args["structures"])


@register_metric("dice_pooled")
class DicePooled:
    """Dice pooled over pixels: 2 sum|P & T| / (sum|P| + sum|T|) from per-row pixel counts."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        inter, total = _count_arrays(rows, args["structures"], _which(args))
        r = stats.bootstrap_ci("dice", inter, total, level=ctx.level, method=ctx.method,
                               n_resamples=ctx.n_resamples, groups=ctx.groups, seed=0)
        return _entry(r, ctx)

    def compare(self, a: pd.DataFrame, b: pd.DataFrame, args: dict, ctx: Context, alternative: str) -> dict:
        which = _which(args)
        r = stats.paired_bootstrap_diff_rows("dice", _count_arrays(a, args["structures"], which),
                                             _count_arrays(b, args["structures"], which), groups=ctx.groups,
                                             level=ctx.level, n_resamples=ctx.n_resamples, alternative=alternative)
        return _comparison(r, ctx.n_resamples)


def row_dice(rows: pd.DataFrame, structures: dict, which: list[str]) -> np.ndarray:
    """Per row: the mean over ``which`` structures of each one's Dice."""
    d = [2 * _col(rows, structures[s]["inter"]) / (_col(rows, structures[s]["pred"]) + _col(rows, structures[s]["truth"]))
         for s in which]
    return np.mean(np.column_stack(d), axis=1)


@register_metric("dice_mean")
class DiceMean:
    """Mean over rows of each row's Dice (mean over the chosen structures)."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        r = stats.bootstrap_ci("mean", row_dice(rows, args["structures"], _which(args)), level=ctx.level,
                               method=ctx.method, n_resamples=ctx.n_resamples, groups=ctx.groups, seed=0)
        return _entry(r, ctx)


@register_metric("relative_area_error")
class RelativeAreaError:
    """Mean over rows of (sum predicted - sum true) / sum true pixels over the structures."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        structures = args["structures"]
        pred = sum(_col(rows, s["pred"]) for s in structures.values())
        true = sum(_col(rows, s["truth"]) for s in structures.values())
        return {"value": float(((pred - true) / true).mean()), "n": len(rows)}


@register_metric("count_summary")
class CountSummary:
    """How many rows have ``column`` = 0 (e.g. videos without a usable beat) and the mean count of the others."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        n = _col(rows, args["column"])
        none = n == 0
        return {args.get("rows", "rows"): len(rows), args.get("zero", "zero"): int(none.sum()),
                args.get("mean", "mean"): float(n[~none].mean()) if (~none).any() else None,
                "handling": args.get("handling", "")}
