"""ACDC's own metric: agreement of the clinical indices (ventricular volumes, ejection fractions,
myocardial mass) computed from the predicted and the true label volumes (torch-free)."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from ... import stats
from ...evaluation.registry import Context, register_metric
from .scoring import clinical_indices


@register_metric("clinical_agreement")
class ClinicalAgreement:
    """Per clinical index (volumes, EF, mass from the rows' volumes): Pearson r, and Bland-Altman
    bias, SD, limits of agreement with exact CIs, and proportional bias (prediction - truth)."""

    def compute(self, rows: pd.DataFrame, args: dict, ctx: Context) -> dict:
        table = clinical_indices(rows)
        out = {}
        for name, g in table.groupby("index", sort=False):
            t, p = g["true"].to_numpy(float), g["pred"].to_numpy(float)
            ok = np.isfinite(t) & np.isfinite(p)
            t, p = t[ok], p[ok]
            if len(t) < 3:
                out[name] = {"n": int(len(t)), "note": "fewer than 3 patients: no agreement statistics"}
                continue
            ba = stats.bland_altman(p, t, level=ctx.level)
            r = scipy_stats.pearsonr(p, t) if np.std(t) > 0 and np.std(p) > 0 else None
            out[name] = {"n": int(len(t)), "pearson_r": float(r.statistic) if r else None,
                         "mae": float(np.abs(p - t).mean()), **{k: v for k, v in asdict(ba).items()}}
        return {"indices": out, "definition": args.get("definition", ""), "level": ctx.level}
