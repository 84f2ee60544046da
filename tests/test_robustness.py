"""ACDC robustness: the per-artifact table of one run and the per-artifact paired tests of two runs
(does the augmented model degrade less?), on prediction tables built here with known answers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cardiobench import evaluation
from cardiobench.config import load_task

ARTIFACTS = ["noise", "blur"]
SEVERITIES = ["mild", "severe"]


def _table(drop: dict[str, float], seed: int, n_patients: int = 12) -> pd.DataFrame:
    """Rows of one model: clean Dice around 0.9, minus ``drop[artifact]`` (x2 when severe), with noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for phase in ("ED", "ES"):
            for s in ("LV", "RV", "MYO"):
                clean = 0.9 + rng.normal(0, 0.02)
                base = dict(sample_id=f"patient{p:03d}_{phase}", patient_id=f"patient{p:03d}", phase=phase,
                            structure=s, split="TEST", hd95_mm=5.0, hd_mm=9.0, assd_mm=1.0, nsd=0.9,
                            max_dist_mm=300.0, vol_true_ml=100.0, vol_pred_ml=100.0, n_true=50, n_pred=50)
                rows.append(dict(base, artifact="clean", severity="none", dice=clean))
                for art in ARTIFACTS:
                    for k, sev in enumerate(SEVERITIES, 1):
                        rows.append(dict(base, artifact=art, severity=sev,
                                         dice=clean - k * drop[art] + rng.normal(0, 0.005)))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def spec():
    return load_task("acdc_seg")


def test_per_artifact_tests_find_the_artifact_that_differs(spec):
    # a loses 0.01 per severity step under noise, b 0.05: a degrades less; under blur they are alike
    a = _table({"noise": 0.01, "blur": 0.02}, seed=1)
    b = a.copy()
    noisy = (b.artifact == "noise").to_numpy()
    step = b.severity.map({"mild": 1, "severe": 2}).fillna(0).to_numpy()
    b.loc[noisy, "dice"] -= 0.04 * step[noisy]
    b["dice"] += np.random.default_rng(2).normal(0, 0.002, len(b))
    rows = {r["metric"]: r for r in evaluation.compare(a, b, spec, n_resamples=1999)}

    expected_noise_drop = (0.04 * 1 + 0.04 * 2) / 2  # b's extra loss, averaged over the two severities
    nd = rows["robustness[noise drop]"]
    assert nd["diff"] == pytest.approx(expected_noise_drop, abs=0.003)
    assert nd["low"] > 0 and nd["p_value"] <= 2 / 2000 and nd["p_holm"] < 0.01  # at the floor of 1999 resamples
    assert rows["robustness[noise]"]["diff"] > 0.05 and rows["robustness[noise]"]["low"] > 0
    bd = rows["robustness[blur drop]"]
    assert abs(bd["diff"]) < 0.003 and bd["low"] <= 0 <= bd["high"] and bd["p_value"] > 0.05
    # Holm within each family: adjusted >= raw, and the larger of two raw p-values is not doubled
    for fam in ("", " drop"):
        ps = [rows[f"robustness[{art}{fam}]"] for art in ARTIFACTS]
        assert all(r["p_holm"] >= r["p_value"] for r in ps)
        small, large = sorted(ps, key=lambda r: r["p_value"])
        assert small["p_holm"] == pytest.approx(min(1, 2 * small["p_value"]))
        assert large["p_holm"] == pytest.approx(max(large["p_value"], small["p_holm"]))
    # the headline: the mean over every corrupted row, as before
    corrupted = a.artifact != "clean"
    assert rows["robustness"]["diff"] == pytest.approx(a.dice[corrupted].mean() - b.dice[corrupted].mean())


def test_drop_pairs_each_corrupted_row_with_its_own_clean_row(spec):
    # b = a with its rows shuffled within each artifact; the drop test must pair by sample and structure
    a = _table({"noise": 0.03, "blur": 0.03}, seed=3)
    b = a.copy()
    b.loc[b.artifact == "clean", "dice"] -= 0.05  # b is worse on clean only: it drops 0.05 less
    rows = {r["metric"]: r for r in evaluation.compare(a, b, spec, n_resamples=999)}
    for art in ARTIFACTS:
        assert rows[f"robustness[{art} drop]"]["diff"] == pytest.approx(-0.05, abs=1e-9)
        assert rows[f"robustness[{art}]"]["diff"] == pytest.approx(0.0, abs=1e-12)


def test_robustness_cells_of_one_run(spec):
    a = _table({"noise": 0.01, "blur": 0.04}, seed=4)
    m = evaluation.evaluate(a, spec, {"n_resamples": 999})
    cells = m["robustness"]["cells"]
    assert set(cells) == set(ARTIFACTS) and set(cells["blur"]) == set(SEVERITIES)
    assert cells["blur"]["severe"]["dice"]["change"] == pytest.approx(-0.08, abs=0.004)
    assert cells["noise"]["mild"]["dice"]["change"] == pytest.approx(-0.01, abs=0.004)
    assert cells["blur"]["severe"]["dice"]["high"] < 0


def test_a_missing_metric_column_is_named(spec):
    from cardiobench.errors import DataError

    a = _table({"noise": 0.01, "blur": 0.04}, seed=5).drop(columns="hd_mm")
    with pytest.raises(DataError, match="metric 'hd' needs the column 'hd_mm'"):
        evaluation.evaluate(a, spec, {"n_resamples": 99})
