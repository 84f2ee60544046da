"""The chest-CT task's binary and agreement metrics against sklearn, statsmodels and hand computation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score
from statsmodels.stats.proportion import proportion_confint

from cardiobench import evaluation
from cardiobench.config import load_task


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(4)
    n = 80
    lvef = rng.uniform(20, 75, n)
    y = (rng.random(n) < 0.3).astype(int)
    prob = np.clip(0.3 + 0.15 * y + rng.normal(0, 0.25, n), 0, 1)
    return pd.DataFrame(dict(sample_id=[f"CT{i:04d}" for i in range(n)], patient_id=[f"CT{i:04d}" for i in range(n)],
                             split="TEST", lvef=lvef, lvef_pred=lvef + 2.0 + rng.normal(0, 5, n), aortic_stenosis=y,
                             as_prob=prob, as_threshold=0.45))


def test_metrics_against_references(rows):
    m = evaluation.evaluate(rows, load_task("ct_cardiac"), {"n_resamples": 999})
    y, p = rows.aortic_stenosis.to_numpy(), rows.as_prob.to_numpy()
    assert m["as_auprc"]["value"] == pytest.approx(average_precision_score(y, p))
    assert m["as_auprc"]["low"] < m["as_auprc"]["value"] < m["as_auprc"]["high"]
    assert m["as_brier"]["value"] == pytest.approx(np.mean((p - y) ** 2))
    hit = (p[y == 1] >= 0.45)
    low, high = proportion_confint(hit.sum(), len(hit), method="wilson")
    assert (m["as_sensitivity"]["value"], m["as_sensitivity"]["low"], m["as_sensitivity"]["high"]) == \
        pytest.approx((hit.mean(), low, high))
    assert m["as_specificity"]["value"] == pytest.approx(np.mean(p[y == 0] < 0.45))
    d = rows.lvef_pred - rows.lvef
    ag = m["lvef_agreement"]
    assert ag["bias"] == pytest.approx(d.mean()) and ag["sd"] == pytest.approx(d.std(ddof=1))
    assert ag["lower"] == pytest.approx(d.mean() - 1.96 * d.std(ddof=1))
    assert ag["lower_low"] < ag["lower"] < ag["lower_high"]


def test_threshold_missing_is_a_note_not_a_number(rows):
    m = evaluation.evaluate(rows.drop(columns="as_threshold"), load_task("ct_cardiac"), {"n_resamples": 199})
    assert m["as_sensitivity"]["value"] is None and "VAL" in m["as_sensitivity"]["note"]


def test_probabilities_outside_0_1_are_refused(rows):
    from cardiobench.errors import DataError

    bad = rows.assign(as_prob=rows.as_prob * 3)
    with pytest.raises(DataError, match="as_brier.*probabilities"):
        evaluation.evaluate(bad, load_task("ct_cardiac"), {"n_resamples": 199})


def test_paired_comparison_of_two_models(rows):
    noise = np.random.default_rng(5).normal(0, 0.05, len(rows))
    better = rows.assign(as_prob=np.clip(0.1 + 0.8 * rows.aortic_stenosis + noise, 0, 1))
    out = {r["metric"]: r for r in evaluation.compare(better, rows, load_task("ct_cardiac"), n_resamples=999)}
    assert out["as_auc"]["diff"] > 0 and out["as_auc"]["p_value"] < 0.05  # paired DeLong
    assert out["as_brier"]["diff"] < 0 and out["as_brier"]["high"] < 0
    assert out["mae"]["diff"] == 0 and out["mae"]["p_value"] == 1.0
