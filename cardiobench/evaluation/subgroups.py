"""The main score per subgroup (a column of predictions.csv the task spec declares under ``subgroups``),
each with its interval, and a test of heterogeneity across the subgroups. Torch-free.

Heterogeneity: Cochran's Q over the subgroups' estimates weighted by 1 / SE², with SE taken from each
subgroup's interval (its width / (2 z)); p from the chi-squared distribution with k - 1 degrees of
freedom, and I² = max(0, (Q - df) / Q) (Higgins & Thompson 2002). A subgroup whose score cannot be
computed (too few patients, one class) is listed with the reason and left out of the test. Q takes the
subgroups as independent samples: where one patient falls in several (CT-RATE's scanner vendor is per
scan) or a subgroup has few patients, it overstates the evidence, and the table says so. A macro score
(CT-RATE's macro AUC) averages, in each subgroup, the labels that subgroup has both classes of: its note
lists the labels left out.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats as ss

from ..spec import SubgroupSpec, TaskSpec
from .metrics import Context, get_metric

SUBGROUP_RESAMPLES = 2000  # per subgroup and run: enough for an interval, not a p near its floor
FEW = 10  # patients per subgroup below which the page warns that the intervals (and Q) are rough


def levels_of(values: pd.Series, sub: SubgroupSpec) -> pd.Series:
    """Each row's subgroup: the value itself, or its band of ``bins`` ("50-64", ">= 65"); NaN when unknown."""
    if not sub.bins:
        return values.where(values.notna() & (values.astype(str).str.strip() != ""), None).astype(object)
    edges = [float(e) for e in sub.bins]
    x = pd.to_numeric(values, errors="coerce")
    names = [f"{lo:g}-{hi:g}" if k < len(edges) - 2 else f">= {lo:g}" for k, (lo, hi) in enumerate(zip(edges, edges[1:]))]
    return pd.cut(x, edges, right=False, labels=names).astype(object)


def _level_row(name: str, rows: pd.DataFrame, spec: TaskSpec, ctx: Context) -> dict:
    from . import groups_of

    main = spec.metrics[spec.main_score]
    n = int(rows[spec.cluster].astype(str).nunique())
    try:
        entry = get_metric(main.fn).compute(rows, main.args, replace(ctx, groups=groups_of(rows, spec)))
    except ValueError as exc:
        return dict(level=name, n=n, value=None, note=f"not computed ({exc})")
    entry = entry or {}
    out = dict(level=name, n=n, value=entry.get("value"), low=entry.get("low"), high=entry.get("high"),
               note=entry.get("note", ""))
    if out["value"] is not None and out["low"] is None:
        out["note"] = out["note"] or "no interval"
    return out


def heterogeneity(levels: list[dict], level: float) -> dict:
    """Cochran's Q, its p and I² over the levels with an interval of positive width."""
    z = float(ss.norm.ppf(0.5 + level / 2))
    usable = [r for r in levels if r.get("value") is not None and r.get("low") is not None
              and r["high"] > r["low"]]
    if len(usable) < 2:
        return dict(q=None, df=None, p=None, i2=None,
                    note="fewer than two subgroups with an interval: no test of heterogeneity")
    theta = np.array([r["value"] for r in usable])
    se = np.array([(r["high"] - r["low"]) / (2 * z) for r in usable])
    w = 1 / se ** 2
    pooled = float((w * theta).sum() / w.sum())
    q = float((w * (theta - pooled) ** 2).sum())
    df = len(usable) - 1
    return dict(q=q, df=df, p=float(ss.chi2.sf(q, df)), i2=max(0.0, (q - df) / q) if q > 0 else 0.0,
                pooled=pooled, note="")


def subgroup_table(pred: pd.DataFrame, spec: TaskSpec, sub: SubgroupSpec, level: float = 0.95,
                   n_resamples: int = SUBGROUP_RESAMPLES) -> dict:
    """The main score of the primary variant per level of ``sub.column``, and the heterogeneity test."""
    from . import rows_of, variants

    name = sub.name or sub.column
    base = dict(name=name, column=sub.column, metric=spec.main_score, levels=[], note=sub.note,
                test="Cochran's Q on the subgroups' estimates, SE from each interval; I²")
    rows = rows_of(pred, spec, (variants(pred, spec) or [None])[0])
    if sub.column not in rows.columns or rows[sub.column].isna().all():
        return {**base, **heterogeneity([], level), "note": f"the predictions have no {sub.column!r} values"}
    labels = levels_of(rows[sub.column], sub)
    ctx = Context(level=level, n_resamples=n_resamples, samples=spec.samples)
    order = list(dict.fromkeys(sorted(labels.dropna().astype(str)))) if not sub.bins else \
        [c for c in dict.fromkeys(levels_of(pd.Series(sub.bins[:-1]), sub).astype(str))]
    levels = [_level_row(v, rows[labels.astype(str) == v].reset_index(drop=True), spec, ctx)
              for v in order if (labels.astype(str) == v).any()]
    unknown = int(rows.loc[labels.isna(), spec.cluster].astype(str).nunique())
    out = {**base, "levels": levels, **heterogeneity(levels, level)}
    cautions = []
    if levels and min(r["n"] for r in levels) < FEW:
        cautions.append(f"some subgroups have fewer than {FEW} patients: their intervals are rough, and the test "
                        f"of heterogeneity (which takes them at face value) overstates the evidence")
    known = rows.loc[labels.notna()]
    shared = known.groupby(known[spec.cluster].astype(str))[sub.column].nunique() if len(known) else pd.Series([], dtype=int)
    if (shared > 1).any():
        cautions.append(f"{int((shared > 1).sum())} patient(s) fall in more than one subgroup (the column varies "
                        f"between their rows), so the subgroups are not independent and the test overstates "
                        f"the evidence")
    if cautions:
        out["caution"] = "; ".join(cautions)
    if unknown:
        out["unknown"] = unknown
    return out


def subgroup_tables(pred: pd.DataFrame, spec: TaskSpec, level: float = 0.95) -> list[dict]:
    return [subgroup_table(pred, spec, s, level) for s in spec.subgroups]
