"""CT-CLIP's zero-shot threshold metrics: the vectorised closest-to-(0, 1) operating point and its
scores equal sklearn's (roc_curve + the scorers) per label, ties and all; a perfect score gives 1;
one-class labels are skipped and named; the bootstrap resamples patients; two models compare."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_curve

from cardiobench.errors import CardiobenchError
from cardiobench.evaluation.metrics import Context, get_metric
from cardiobench.evaluation.multilabel_metrics import THRESHOLD_QUANTITIES, threshold_quantities

LABELS = ["cardiomegaly", "emphysema", "lung_nodule", "hiatal_hernia"]


def _rows(seed: int = 0, n_patients: int = 40, signal: float = 1.5) -> pd.DataFrame:
    """One row per patient; scores informative for every label but hiatal_hernia, which has no positive."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        row = {"sample_id": f"valid_{p}_a_1.nii.gz", "patient_id": f"valid_{p}"}
        for lab in LABELS:
            y = 0 if lab == "hiatal_hernia" else int(rng.random() < 0.35)
            row[lab] = y
            row[lab + "_prob"] = 1 / (1 + np.exp(-(signal * y + rng.normal())))
        rows.append(row)
    return pd.DataFrame(rows)


def _ctx(rows: pd.DataFrame, **kw) -> Context:
    return Context(n_resamples=499, groups=rows.patient_id.to_numpy(), samples="volumes", **kw)


def _sklearn(y: np.ndarray, s: np.ndarray) -> tuple[dict[str, float], float]:
    """The reference: roc_curve's threshold closest to (0, 1) (first of ties), then sklearn's scorers."""
    fpr, tpr, thresholds = roc_curve(y, s)
    t = thresholds[np.argmin(np.sqrt(fpr**2 + (1 - tpr) ** 2))]
    pred = (s >= t).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero_division: a class predicted for no row
        return {"accuracy": accuracy_score(y, pred), "sensitivity": recall_score(y, pred),
                "specificity": recall_score(y, pred, pos_label=0),
                "f1_weighted": f1_score(y, pred, average="weighted"),
                "precision_weighted": precision_score(y, pred, average="weighted")}, t


def test_fast_path_equals_sklearn_per_label_with_ties():
    rng = np.random.default_rng(1)
    checked = no_positive_called = 0
    for trial in range(60):
        n, n_labels = int(rng.integers(4, 41)), 6
        y = (rng.random((n, n_labels)) < rng.uniform(0.1, 0.9)).astype(float)
        levels = int(rng.integers(1, 8))  # coarse scores: many ties, within and across classes
        s = rng.integers(0, levels, (n, n_labels)) / levels if trial % 2 else rng.random((n, n_labels))
        if trial % 3 == 0:
            s = s + 0.5 * y
        got, thresholds = threshold_quantities(y, s)
        for j in range(n_labels):
            if y[:, j].sum() in (0, n):
                assert all(np.isnan(got[w][j]) for w in THRESHOLD_QUANTITIES)
                continue
            ref, t = _sklearn(y[:, j], s[:, j])
            assert thresholds[j] == t
            for w in THRESHOLD_QUANTITIES:
                assert got[w][j] == pytest.approx(ref[w], abs=1e-12), (trial, j, w)
            checked += 1
            no_positive_called += bool(np.isinf(t))
    assert checked > 250 and no_positive_called > 0  # the +inf threshold (no positive) is covered


def test_roc_points_dropped_by_sklearn_are_not_candidates():
    """Three tied (case, control) pairs after a lone case make collinear, equally spaced ROC points;
    roc_curve drops the inner ones, among them (1/3, 3/4) at threshold 2, which is closer to (0, 1)
    than the kept (1/2, 1) at threshold 1."""
    y = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0, 0], float)
    s = np.array([9, 3, 3, 2, 2, 1, 1, 0, 0, 0], float)
    got, thresholds = threshold_quantities(y[:, None], s[:, None])
    ref, t = _sklearn(y, s)
    fpr, tpr, every = roc_curve(y, s, drop_intermediate=False)
    assert every[np.argmin(np.sqrt(fpr**2 + (1 - tpr) ** 2))] == 2
    assert thresholds[0] == t == 1
    assert all(got[w][0] == pytest.approx(ref[w], abs=1e-12) for w in THRESHOLD_QUANTITIES)


def test_perfect_separation_scores_one():
    rows = _rows()
    for lab in LABELS[:3]:
        rows[lab + "_prob"] = 0.2 + 0.6 * rows[lab]
    for which in ("accuracy", "sensitivity", "specificity", "f1_weighted", "precision_weighted"):
        got = get_metric("ctclip_threshold").compute(rows, {"labels": LABELS[:3], "which": which}, _ctx(rows))
        assert got["value"] == 1.0 and got["low"] == got["high"] == 1.0
        assert all(v == {"value": 1.0, "threshold": 0.8} for v in got["per_label"].values())


def test_one_class_label_is_skipped_and_named():
    rows = _rows()
    got = get_metric("ctclip_threshold").compute(rows, {"labels": LABELS, "which": "accuracy"}, _ctx(rows))
    assert got["labels_scored"] == LABELS[:3] and got["labels_skipped"] == ["hiatal_hernia"]
    assert "hiatal_hernia" in got["note"] and set(got["per_label"]) == set(LABELS[:3])
    y = rows[LABELS[:3]].to_numpy(float)
    s = rows[[lab + "_prob" for lab in LABELS[:3]]].to_numpy(float)
    assert got["value"] == pytest.approx(np.mean([_sklearn(y[:, j], s[:, j])[0]["accuracy"] for j in range(3)]))
    none = get_metric("ctclip_threshold").compute(rows, {"labels": ["hiatal_hernia"], "which": "accuracy"},
                                                  _ctx(rows))
    assert none["value"] is None and none["labels_skipped"] == ["hiatal_hernia"]


def test_unknown_quantity_is_refused():
    rows = _rows()
    with pytest.raises(CardiobenchError, match="which"):
        get_metric("ctclip_threshold").compute(rows, {"labels": LABELS, "which": "auc"}, _ctx(rows))


@pytest.mark.parametrize("which", ["sensitivity", "f1_weighted"])
def test_ci_brackets_the_value_and_resamples_patients(which):
    """Every row twice under one patient id: with the patients as groups the bootstrap draws the same
    patients and the interval is the one of the single rows; resampling rows instead narrows it."""
    rows = _rows()
    doubled = pd.concat([rows, rows.assign(sample_id=rows.sample_id.str.replace("_1.nii", "_2.nii"))],
                        ignore_index=True)
    args = {"labels": LABELS, "which": which}
    single = get_metric("ctclip_threshold").compute(rows, args, _ctx(rows))
    clustered = get_metric("ctclip_threshold").compute(doubled, args, _ctx(doubled))
    naive = get_metric("ctclip_threshold").compute(doubled, args, Context(n_resamples=499))
    assert single["low"] < single["value"] < single["high"] and single["resampled"] == "patients"
    assert single["n_resamples"] == 499 and clustered["n_clusters"] == 40
    for key in ("value", "low", "high"):
        assert clustered[key] == pytest.approx(single[key], abs=1e-12)
    assert (naive["high"] - naive["low"]) < (clustered["high"] - clustered["low"])


def test_resamples_are_capped_at_499():
    rows = _rows()
    got = get_metric("ctclip_threshold").compute(rows, {"labels": LABELS, "which": "accuracy"},
                                                 Context(n_resamples=9999, groups=rows.patient_id.to_numpy()))
    assert got["n_resamples"] == 499


def test_paired_comparison_finds_the_better_model():
    good, noise = _rows(seed=1, signal=3.0), _rows(seed=1, signal=0.0)
    cmp = get_metric("ctclip_threshold").compare(good, noise, {"labels": LABELS, "which": "accuracy"},
                                                 _ctx(good), "two-sided")
    assert cmp["diff"] > 0.1 and cmp["p_value"] < 0.05 and cmp["low"] > 0
    assert cmp["diff"] == pytest.approx(cmp["a"] - cmp["b"])
