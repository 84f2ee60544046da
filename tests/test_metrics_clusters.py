"""Patient-level and class-stratified resampling in the metrics path (`cardiobench evaluate`), checked
against a BCa bootstrap written here as a plain loop over patients.

The data: 52 TEST videos of 26 patients (two videos each), only 4 of them with EF < 50 (8 videos),
and prediction errors shared within a patient, so that resampling videos instead of patients, or
ignoring the class strata, gives visibly different intervals."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr, ndtri
from sklearn.metrics import roc_auc_score

from .runmaker import evaluate_external, external_csv, split_twin, truth_of

B = 9999
TOL = 0.05  # of the interval's width: Monte-Carlo error of two independent 9 999-resample intervals


def naive_bca(stat, arrays, groups, strata=None, level=0.95, seed=1):
    """BCa interval (Efron & Tibshirani 1993, 14.3) resampling whole patients, within strata."""
    groups = np.asarray(groups)
    patients = list(dict.fromkeys(groups))
    rows = {g: np.flatnonzero(groups == g) for g in patients}
    if strata is None:
        pools = [patients]
    else:
        of = {g: strata[rows[g][0]] for g in patients}
        pools = [[g for g in patients if of[g] == s] for s in dict.fromkeys(of.values())]
    theta = stat(*arrays)
    rng = np.random.default_rng(seed)
    boot = np.empty(B)
    for b in range(B):
        chosen = [pool[k] for pool in pools for k in rng.integers(0, len(pool), len(pool))]
        idx = np.concatenate([rows[g] for g in chosen])
        boot[b] = stat(*(a[idx] for a in arrays))
    z0 = ndtri(np.mean(boot < theta) + 0.5 * np.mean(boot == theta))
    jack = np.array([stat(*(a[groups != g] for a in arrays)) for g in patients])
    d = jack.mean() - jack
    acc = (d ** 3).sum() / (6 * (d ** 2).sum() ** 1.5)
    z = ndtri(np.array([(1 - level) / 2, (1 + level) / 2]))
    return np.percentile(boot, 100 * ndtr(z0 + (z0 + z) / (1 - acc * (z0 + z))))


def mae(y, p):
    return np.abs(y - p).mean()


def auc(label, score):
    """Mann-Whitney AUC from the full case x control comparison table (ties count 1/2)."""
    label = label.astype(bool)
    x, y = score[label], score[~label]
    return float((x[:, None] > y[None, :]).mean() + 0.5 * (x[:, None] == y[None, :]).mean())


@pytest.fixture(scope="module")
def clustered(twin80, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clusters")
    fl = pd.read_csv(twin80 / "FileList.csv").sort_values("EF", ascending=False)
    pos = list(fl.FileName[fl.EF < 50][:8])    # the 8 reduced-EF videos closest to the threshold
    neg = list(fl.FileName[fl.EF >= 50][:44])
    names = pos + neg
    patients = {n: f"P{i // 2:02d}" for i, n in enumerate(names)}  # two videos each, one class per patient
    root = split_twin(twin80, tmp / "echo_patients", test=names, patients_of=patients)
    truth = truth_of(root)
    rng = np.random.default_rng(1)
    shared = {p: rng.normal(0, 4) for p in sorted(set(patients.values()))}
    pred = truth.EF.to_numpy() + truth.patient_id.map(shared).to_numpy() + rng.normal(0, 1.5, len(truth))
    run = evaluate_external(root, tmp / "runs", external_csv(truth, pred, tmp / "pred.csv"), "clustered")
    out = pd.read_csv(run / "predictions.csv", dtype={"patient_id": str})
    return dict(pred=out, metrics=json.loads((run / "metrics.json").read_text()))


def _assert_close(entry: dict, oracle, other=None):
    width = oracle[1] - oracle[0]
    assert abs(entry["low"] - oracle[0]) < TOL * width and abs(entry["high"] - oracle[1]) < TOL * width, \
        (entry["low"], entry["high"], oracle)
    if other is not None:  # the wrong resampling scheme is visibly different: this test could fail
        assert max(abs(other[0] - oracle[0]), abs(other[1] - oracle[1])) > 2 * TOL * width, (other, oracle)


def test_mae_resamples_patients(clustered):
    pred, m = clustered["pred"], clustered["metrics"]
    y, p, g = pred.EF.to_numpy(float), pred.EF_pred.to_numpy(float), pred.patient_id.to_numpy()
    assert g.tolist().count(g[0]) == 2 and len(set(g)) == 26
    assert m["mae"]["n_clusters"] == 26 and m["mae"]["resampled"] == "patients"
    oracle = naive_bca(mae, (y, p), g)
    rows = naive_bca(mae, (y, p), np.arange(len(y)))
    _assert_close(m["mae"], oracle, other=rows)


def test_ef_range_mae_resamples_patients(clustered):
    pred, m = clustered["pred"], clustered["metrics"]
    y, p, g = pred.EF.to_numpy(float), pred.EF_pred.to_numpy(float), pred.patient_id.to_numpy()
    sel = (y >= 55) & (y < 70)
    assert len(set(g[sel])) < sel.sum()  # patients with both videos in the bin
    entry = m["mae_by_ef_bin"]["55-70"]
    assert entry["n_clusters"] == len(set(g[sel]))
    _assert_close(entry, naive_bca(mae, (y[sel], p[sel]), g[sel]))


def test_auc_resamples_patients_within_class(clustered):
    pred, m = clustered["pred"], clustered["metrics"]
    y, p, g = pred.EF.to_numpy(float), pred.EF_pred.to_numpy(float), pred.patient_id.to_numpy()
    label = (y < 50).astype(int)
    assert label.sum() == 8 and len(set(g[label == 1])) == 4
    entry = m["auc_ef50"]
    assert entry["value"] == pytest.approx(roc_auc_score(label, -p), abs=1e-12)
    assert entry["resampled"] == "patients, stratified by class" and entry["n_clusters"] == 26
    oracle = naive_bca(auc, (label, -p), g, strata=label)
    rows = naive_bca(auc, (label, -p), np.arange(len(y)), strata=label)
    _assert_close(entry, oracle, other=rows)
