"""echonet_ef metrics from predictions (its spec + the metric registry): CI modes, heart-failure AUCs,
EF bins, MC-dropout, modes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cardiobench import evaluation, stats
from cardiobench.config import load_task


def _evaluate(pred, **ci):
    return evaluation.evaluate(pred, load_task("echonet_ef"), ci or None)


def _pred(n=120, seed=0, sd=None):
    rng = np.random.default_rng(seed)
    ef = rng.uniform(15, 80, n)
    df = pd.DataFrame({"sample_id": [f"v{i}" for i in range(n)], "patient_id": [f"v{i}" for i in range(n)],
                       "split": "TEST", "EF": ef, "EF_pred": ef + rng.normal(0, 5, n), "mode": "single_clip"})
    if sd is not None:
        df["EF_pred_std"] = sd
    return df


def test_echonet_ci_mode_is_the_original_90_percent_percentile():
    pred = _pred()
    m = _evaluate(pred, mode="echonet")
    assert m["mae"]["level"] == 0.90 and m["mae"]["method"] == "percentile" and m["mae"]["n_resamples"] == 10000
    assert "90 %" in m["mae"]["ci_mode"]
    # The original code's interval, written as a plain loop: 5th and 95th percentiles of 10 000 MAEs.
    y, p = pred.EF.to_numpy(), pred.EF_pred.to_numpy()
    g = np.random.default_rng(123)
    boot = [np.abs(y[i] - p[i]).mean() for i in g.integers(0, len(y), (10000, len(y)))]
    low, high = np.percentile(boot, [5, 95])
    width = high - low
    assert abs(m["mae"]["low"] - low) < 0.04 * width and abs(m["mae"]["high"] - high) < 0.04 * width
    default = _evaluate(pred)
    assert default["mae"]["level"] == 0.95 and default["mae"]["method"] == "bca"
    assert default["mae"]["high"] - default["mae"]["low"] > m["mae"]["high"] - m["mae"]["low"]


def test_heart_failure_aucs_bins_and_pearson():
    pred = _pred()
    m = _evaluate(pred)
    for t in (35, 40, 45, 50):
        label = (pred.EF < t).astype(int)
        assert m[f"auc_ef{t}"]["value"] == pytest.approx(stats.auc(label, -pred.EF_pred))
        assert m[f"auc_ef{t}"]["n_cases"] == label.sum()
    assert sum(b["n"] for b in m["mae_by_ef_bin"].values()) == len(pred)
    assert m["pearson_r"]["value"] == pytest.approx(np.corrcoef(pred.EF, pred.EF_pred)[0, 1])


def test_mc_dropout_coverage_and_spearman():
    pred = _pred(sd=5.0)  # errors are N(0, 5): a 90 % interval of +/- 1.645 x 5 covers about 90 %
    m = _evaluate(pred)
    assert 0.8 <= m["mc_coverage90"]["value"] <= 0.97
    assert m["mc_coverage90"]["low"] < m["mc_coverage90"]["value"] < m["mc_coverage90"]["high"]
    too_sure = _evaluate(_pred(sd=0.5))
    assert too_sure["mc_coverage90"]["value"] < 0.3


def test_several_modes_primary_first():
    a = _pred()
    b = a.assign(EF_pred=a.EF + 1.0, mode="all_clips")
    m = _evaluate(pd.concat([a, b]))
    assert m["primary_mode"] == "single_clip"
    assert m["mae"]["value"] == pytest.approx(stats.mae(a.EF, a.EF_pred))
    assert m["by_mode"]["all_clips"]["mae"]["value"] == pytest.approx(1.0)
