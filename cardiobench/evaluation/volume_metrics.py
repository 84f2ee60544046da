"""Metrics of per-structure segmentation rows (ACDC): means of Dice and surface distances over
rows chosen by column values, the explicit rule for distances to a missing structure, clinical
agreement of the volumes they imply, and robustness to image artifacts (drop from the clean rows).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from .. import stats
from .registry import Context, _comparison, _entry, register_metric

CLEAN = "clean"


def select(rows: pd.DataFrame, where: dict | None) -> pd.DataFrame:
    """Rows whose columns take one of the listed values (``{structure: [LV, RV], phase: [ED]}``)."""
    keep = np.ones(len(rows), dtype=bool)
    for col, values in (where or {}).items():
        keep &= rows[col].astype(str).isin([str(v) for v in (values if isinstance(values, list) else [values])])
    return rows[keep]


def values(rows: pd.DataFrame, column: str, inf_to: str | None) -> tuple[np.ndarray, int]:
    """A column as floats; ``inf`` (a structure missing from exactly one mask) replaced by the row's
    ``inf_to`` column (the field-of-view diagonal), and how many were replaced. Never dropped."""
    x = rows[column].to_numpy(float)
    inf = np.isinf(x)
    if inf.any() and inf_to:
        x = np.where(inf, rows[inf_to].to_numpy(float), x)
    return x, int(inf.sum())


def _groups(rows: pd.DataFrame, ctx: Context) -> np.ndarray | None:
    g = rows["patient_id"].astype(str) if "patient_id" in rows.columns else None
    return g.to_numpy() if g is not None and g.duplicated().any() else None


@register_metric("mean_of")
class MeanOf:
    """Mean of ``column`` over the rows chosen by ``where``; patients resampled (a patient has several rows)."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict | None:
        sel = select(rows, args.get("where"))
        if len(sel) < 2:
            return {"value": None, "note": f"{len(sel)} row(s) selected: no estimate"}
        x, n_inf = values(sel, args["column"], args.get("inf_to"))
        r = stats.bootstrap_ci("mean", x, level=ctx.level, method=ctx.method, n_resamples=ctx.n_resamples,
                               groups=_groups(sel, ctx), seed=0)
        out = _entry(r, replace(ctx, groups=_groups(sel, ctx)))
        if args.get("inf_to"):
            out["n_missing_structure"] = n_inf
        return out

    def compare(self, a: pd.DataFrame, b: pd.DataFrame, args: dict, ctx: Context, alternative: str) -> dict | None:
        sa, sb = select(a, args.get("where")), select(b, args.get("where"))
        if len(sa) < 2:
            return None
        xa, _ = values(sa, args["column"], args.get("inf_to"))
        xb, _ = values(sb, args["column"], args.get("inf_to"))
        r = stats.paired_bootstrap_diff_rows("mean", [xa], [xb], groups=_groups(sa, ctx), level=ctx.level,
                                             n_resamples=ctx.n_resamples, alternative=alternative)
        return _comparison(r, ctx.n_resamples)


@register_metric("means_by")
class MeansBy:
    """A table: for each combination of the ``by`` columns, the mean of each of ``columns`` with its CI."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        by, out = list(args["by"]), {}
        for key, g in rows.groupby(by, sort=False):
            name = "/".join(map(str, key if isinstance(key, tuple) else (key,)))
            cell = {}
            for col in args["columns"]:
                x, n_inf = values(g, col, args.get("inf_to"))
                if len(x) >= 2:
                    r = stats.bootstrap_ci("mean", x, level=ctx.level, method=ctx.method, n_resamples=ctx.n_resamples,
                                           groups=_groups(g, ctx), seed=0)
                    cell[col] = {"value": r.estimate, "low": r.low, "high": r.high, "n": len(x)}
                else:
                    cell[col] = {"value": float(x.mean()) if len(x) else None, "n": len(x)}
                if np.isinf(g[col].to_numpy(float)).any() or args.get("inf_to"):
                    cell[col]["n_missing_structure"] = n_inf
            out[name] = cell
        return {"by": by, "cells": out, "level": ctx.level, "rule": args.get("rule", "")}


@register_metric("empty_structures")
class EmptyStructures:
    """How many rows have an empty truth, an empty prediction, or exactly one of the two (counted, never dropped)."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        t, p = rows["n_true"].to_numpy() == 0, rows["n_pred"].to_numpy() == 0
        return {"rows": len(rows), "truth_empty": int(t.sum()), "prediction_empty": int(p.sum()),
                "both_empty": int((t & p).sum()), "one_empty": int((t ^ p).sum()), "handling": args.get("handling", "")}


@register_metric("robustness")
class Robustness:
    """Per artifact x severity: the mean of each column and its change from the clean rows of the
    same samples, with a paired patient bootstrap CI and p-value (the rows are paired by sample and structure)."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        key = ["sample_id", "structure"]
        clean = rows[rows.artifact.astype(str) == CLEAN].set_index(key)
        out: dict = {}
        n = int(args.get("n_resamples", min(ctx.n_resamples, 1999)))
        for (art, sev), g in rows[rows.artifact.astype(str) != CLEAN].groupby(["artifact", "severity"], sort=False):
            g = g.set_index(key)
            base = clean.loc[g.index]
            cell = {}
            for col in args["columns"]:
                x, n_inf = values(g.reset_index(), col, args.get("inf_to"))
                x0, _ = values(base.reset_index(), col, args.get("inf_to"))
                groups = base.reset_index()["patient_id"].astype(str).to_numpy()
                r = stats.paired_bootstrap_diff_rows("mean", [x], [x0], groups=groups, level=ctx.level,
                                                     n_resamples=n, alternative="two-sided")
                cell[col] = {"value": float(x.mean()), "clean": float(x0.mean()), "change": r.diff, "low": r.low,
                             "high": r.high, "p_value": r.p_value, "n_missing_structure": n_inf}
            out.setdefault(str(art), {})[str(sev)] = cell
        bad = rows[rows.artifact.astype(str) != CLEAN]
        summary = {"value": None}
        if len(bad) >= 2:  # the headline: the first column's mean over every corrupted row (what compare tests)
            x, _ = values(bad, args["columns"][0], args.get("inf_to"))
            summary = _entry(stats.bootstrap_ci("mean", x, level=ctx.level, method=ctx.method, n_resamples=n,
                                                groups=_groups(bad, ctx), seed=0), replace(ctx, groups=_groups(bad, ctx)))
        return {**summary, "cells": out, "level": ctx.level, "n_resamples": n,
                "test": f"paired patient bootstrap of the mean change from clean ({n} resamples)"}

    def compare(self, a: pd.DataFrame, b: pd.DataFrame, args: dict, ctx: Context, alternative: str) -> list[dict] | None:
        """a - b on the first column: its mean over every corrupted row (the headline), then per artifact
        (all severities) the mean under that artifact (``[noise]``) and the change from clean
        (``[noise drop]``, a difference of differences: does a degrade less than b?), each a paired
        patient bootstrap with Holm-adjusted p-values across the artifacts of its family."""
        col = args["columns"][0]
        sa, sb = a[a.artifact.astype(str) != CLEAN], b[b.artifact.astype(str) != CLEAN]
        if len(sa) < 2 or len(sa) != len(sb):
            return None
        out = [self._paired(sa, sb, col, args, ctx, alternative)]
        ca, cb = _clean_of(a, sa), _clean_of(b, sb)
        per, drop = [], []
        for art in dict.fromkeys(sa.artifact.astype(str)):
            ia, ib = (sa.artifact.astype(str) == art).to_numpy(), (sb.artifact.astype(str) == art).to_numpy()
            per.append(dict(part=art, **self._paired(sa[ia], sb[ib], col, args, ctx, alternative)))
            drop.append(dict(part=f"{art} drop", **self._paired(sa[ia], sb[ib], col, args, ctx, alternative,
                                                                 base=(ca[ia], cb[ib]))))
        for family in (per, drop):
            adjusted, _ = stats.holm([r["p_value"] for r in family])
            for r, p in zip(family, adjusted):
                r["p_holm"] = float(p)
        return out + per + drop

    @staticmethod
    def _paired(sa: pd.DataFrame, sb: pd.DataFrame, col: str, args: dict, ctx: Context, alternative: str,
                base: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> dict:
        xa, _ = values(sa, col, args.get("inf_to"))
        xb, _ = values(sb, col, args.get("inf_to"))
        if base is not None:  # change from the clean prediction of the same sample and structure
            xa = xa - values(base[0], col, args.get("inf_to"))[0]
            xb = xb - values(base[1], col, args.get("inf_to"))[0]
        r = stats.paired_bootstrap_diff_rows("mean", [xa], [xb], groups=sa["patient_id"].astype(str).to_numpy(),
                                             level=ctx.level, n_resamples=ctx.n_resamples, alternative=alternative)
        return _comparison(r, ctx.n_resamples)


def _clean_of(rows: pd.DataFrame, corrupted: pd.DataFrame) -> pd.DataFrame:
    """For each corrupted row, the clean row of the same sample and structure (same order)."""
    key = ["sample_id", "structure"]
    clean = rows[rows.artifact.astype(str) == CLEAN].set_index(key)
    return clean.loc[pd.MultiIndex.from_frame(corrupted[key])].reset_index()
