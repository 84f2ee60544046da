"""ACDC scoring without torch: a predicted label volume against its ground truth -> predictions.csv
rows, the clinical indices derived from those rows, and a folder of external NIfTI masks scored.

Rows are one per (sample, structure[, artifact, severity]); every distance is in mm from the ground
truth's header spacing (:mod:`cardiobench.evaluation.surface`), volumes in mL.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ...errors import DataError
from ...evaluation.surface import label_scores

STRUCTURES = {"RV": 1, "MYO": 2, "LV": 3}   # ACDC label values
MYO_DENSITY = 1.05                          # g/mL: myocardial mass = ED myocardium volume x 1.05
CLEAN = ("clean", "none")                   # (artifact, severity) of the uncorrupted rows
SCORE_COLUMNS = ["dice", "hd95_mm", "hd_mm", "assd_mm", "nsd", "vol_true_ml", "vol_pred_ml", "n_true", "n_pred",
                 "n_inter", "max_dist_mm"]
# group: the patient's ACDC pathology group (Info.cfg), for the per-group tables of the task's subgroups
ROW_COLUMNS = ["sample_id", "patient_id", "split", "phase", "structure", "artifact", "severity", *SCORE_COLUMNS, "group"]
INDICES = ("lv_edv_ml", "lv_esv_ml", "lv_ef", "rv_edv_ml", "rv_esv_ml", "rv_ef", "myo_mass_g")


def score_rows(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float], sample: dict,
               artifact: str = CLEAN[0], severity: str = CLEAN[1], nsd_tolerance_mm: float = 2.0) -> list[dict]:
    """One row per structure: Dice, HD95/HD/ASSD in mm, NSD at ``nsd_tolerance_mm``, volumes.

    ``max_dist_mm`` (the diagonal of the field of view) is the distance a structure missing from
    exactly one of the two masks counts as when distances are averaged (see the task spec).
    """
    scores = label_scores(pred, truth, spacing, STRUCTURES, nsd_tolerance_mm)
    diag = float(math.sqrt(sum((n * s) ** 2 for n, s in zip(truth.shape, spacing))))
    rows = []
    for name, sc in scores.items():
        d = sc.as_dict()
        rows.append({"sample_id": sample["sample_id"], "patient_id": sample["patient_id"], "split": sample["split"],
                     "phase": sample["phase"], "structure": name, "artifact": artifact, "severity": severity,
                     **{c: d[c] for c in SCORE_COLUMNS if c in d}, "max_dist_mm": diag, "group": sample.get("group")})
    return rows


def clinical_indices(rows: pd.DataFrame) -> pd.DataFrame:
    """``patient_id, index, true, pred`` for LV/RV EDV, ESV, EF and the ED myocardial mass, from the
    clean rows' volumes (patients without both phases are left out)."""
    clean = rows[(rows.artifact == CLEAN[0])] if "artifact" in rows.columns else rows
    out = []
    for pid, g in clean.groupby("patient_id", sort=True):
        vol = {(r.phase, r.structure): (r.vol_true_ml, r.vol_pred_ml) for r in g.itertuples()}
        if not all((ph, s) in vol for ph in ("ED", "ES") for s in ("LV", "RV", "MYO")):
            continue
        for k, which in ((0, "true"), (1, "pred")):
            v = {key: val[k] for key, val in vol.items()}
            idx = {"lv_edv_ml": v["ED", "LV"], "lv_esv_ml": v["ES", "LV"], "rv_edv_ml": v["ED", "RV"],
                   "rv_esv_ml": v["ES", "RV"], "myo_mass_g": v["ED", "MYO"] * MYO_DENSITY,
                   "lv_ef": _ef(v["ED", "LV"], v["ES", "LV"]), "rv_ef": _ef(v["ED", "RV"], v["ES", "RV"])}
            for name in INDICES:
                out.append({"patient_id": pid, "index": name, "which": which, "value": idx[name]})
    if not out:
        return pd.DataFrame(columns=["patient_id", "index", "true", "pred"])
    t = pd.DataFrame(out).pivot_table(index=["patient_id", "index"], columns="which", values="value", sort=False)
    t = t.reset_index()[["patient_id", "index", "true", "pred"]]
    t["index"] = pd.Categorical(t["index"], INDICES, ordered=True)
    return t.sort_values(["index", "patient_id"]).reset_index(drop=True).astype({"index": str})


def _ef(edv: float, esv: float) -> float:
    return float(100.0 * (edv - esv) / edv) if edv > 0 else float("nan")


def score_mask_dir(mask_dir: str | Path, samples: pd.DataFrame, root: Path, cfg=None) -> pd.DataFrame:
    """Score a folder of challenge-named NIfTI masks (``patientNNN_ED.nii.gz``, ``_ES``) against the
    ground truth of ``samples`` (the scored split). A missing case, a mask of the wrong shape or
    affine, or a label value outside 0-3 is refused naming the file."""
    from . import format as acdc

    mask_dir = Path(mask_dir)
    nsd_tolerance_mm = float(cfg.eval.nsd_tolerance_mm) if cfg is not None else 2.0
    if not mask_dir.is_dir():
        raise DataError(f"{mask_dir}: predictions must be a folder of NIfTI masks (patientNNN_ED.nii.gz, ...)")
    missing = [s for s in samples.sample_id if not _mask_file(mask_dir, s)]
    if missing:
        raise DataError(f"{mask_dir}: {len(missing)} case(s) have no mask: "
                        f"{', '.join(f'{m}.nii.gz' for m in missing[:8])}{' ...' if len(missing) > 8 else ''}")
    rows = []
    for s in samples.itertuples(index=False):
        case = acdc.read_case(s.path, s.gt_path, root=root)
        pred = acdc.read_mask(_mask_file(mask_dir, s.sample_id), like=case, root=None)
        rows += score_rows(pred, case.label, case.spacing, s._asdict(), nsd_tolerance_mm=nsd_tolerance_mm)
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def _mask_file(folder: Path, sample_id: str) -> Path | None:
    for ext in (".nii.gz", ".nii"):
        p = folder / f"{sample_id}{ext}"
        if p.is_file():
            return p
    return None
