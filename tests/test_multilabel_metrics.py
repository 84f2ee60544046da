"""Macro AUROC over several labels: equals the mean of sklearn's per-label AUCs, skips (and names)
labels with one class, resamples patients, and compares two models on the same rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cardiobench.evaluation.metrics import Context, get_metric

LABELS = ["cardiomegaly", "emphysema", "lung_nodule", "hiatal_hernia"]


def _rows(seed: int = 0, n_patients: int = 60, recs: int = 2, signal: float = 1.5) -> pd.DataFrame:
    """``recs`` reconstructions per patient sharing labels and most of their scores (one scan); scores
    informative for every label but hiatal_hernia, which has no positive at all."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        y = {lab: int(rng.random() < 0.3) for lab in LABELS}
        y["hiatal_hernia"] = 0
        scan = {lab: rng.normal() for lab in LABELS}  # the same anatomy in every reconstruction
        for r in range(recs):
            row = {"sample_id": f"valid_{p}_a_{r + 1}.nii.gz", "patient_id": f"valid_{p}"}
            for lab in LABELS:
                row[lab] = y[lab]
                row[lab + "_prob"] = 1 / (1 + np.exp(-(signal * y[lab] + scan[lab] + 0.2 * rng.normal())))
            rows.append(row)
    return pd.DataFrame(rows)


def _ctx(rows: pd.DataFrame) -> Context:
    return Context(n_resamples=499, groups=rows.patient_id.to_numpy(), samples="volumes")


def test_value_is_the_mean_of_the_per_label_aucs_and_one_class_labels_are_named():
    rows = _rows()
    got = get_metric("macro_auc").compute(rows, {"labels": LABELS}, _ctx(rows))
    expected = np.mean([roc_auc_score(rows[lab], rows[lab + "_prob"]) for lab in LABELS[:3]])
    assert got["value"] == pytest.approx(expected, abs=1e-12)
    assert got["labels_scored"] == LABELS[:3] and got["labels_skipped"] == ["hiatal_hernia"]
    assert "hiatal_hernia" in got["note"]
    assert got["low"] < got["value"] < got["high"] and got["resampled"] == "patients"


def test_no_scorable_label_gives_no_value():
    rows = _rows()
    got = get_metric("macro_auc").compute(rows, {"labels": ["hiatal_hernia"]}, _ctx(rows))
    assert got["value"] is None and got["labels_skipped"] == ["hiatal_hernia"]


def test_patient_clusters_widen_the_interval_of_duplicated_rows():
    """Reconstructions of one patient are not independent: resampling rows as if they were would give
    a narrower interval than resampling patients."""
    rows = _rows(recs=3)
    clustered = get_metric("macro_auc").compute(rows, {"labels": LABELS}, _ctx(rows))
    naive = get_metric("macro_auc").compute(rows, {"labels": LABELS}, Context(n_resamples=499))
    assert (clustered["high"] - clustered["low"]) > 1.3 * (naive["high"] - naive["low"])


def test_paired_comparison_finds_the_better_model():
    good, noise = _rows(seed=1, signal=2.5), _rows(seed=1, signal=0.0)
    cmp = get_metric("macro_auc").compare(good, noise, {"labels": LABELS}, _ctx(good), "two-sided")
    assert cmp["diff"] > 0.2 and cmp["p_value"] < 0.01 and cmp["low"] > 0
