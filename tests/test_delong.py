"""DeLong against pROC 1.19's published outputs on its aSAH data (vendored in tests/data/, see its README)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cardiobench import stats
from cardiobench.stats.delong import delong_auc, delong_cov, delong_test, delong_test_unpaired

from .conftest import DATA, ROOT

REF = DATA
SHARED = ROOT.parent / "shared" / "reference"
TOL = 1e-9


@pytest.mark.parametrize("name", ["aSAH.csv", "pROC_expected.json"])
def test_vendored_copy_is_the_shared_reference(name):
    assert (REF / name).is_file(), f"{REF / name} is missing: the pROC reference must be vendored"
    if SHARED.is_dir():  # beside a project checkout: the copies must not drift
        assert (REF / name).read_bytes() == (SHARED / name).read_bytes()


@pytest.fixture(scope="module")
def asah():
    df = pd.read_csv(REF / "aSAH.csv")
    y = (df.outcome == "Poor").to_numpy().astype(int)
    return y, {k: df[k].to_numpy(float) for k in ("wfns", "s100b", "ndka")}, df


@pytest.fixture(scope="module")
def expected():
    return json.loads((REF / "pROC_expected.json").read_text())


def test_auc_and_variance(asah, expected):
    y, x, _ = asah
    for k in ("wfns", "s100b", "ndka"):
        r = delong_auc(y, x[k])
        assert r.auc == pytest.approx(expected["auc"][k], abs=TOL)
        assert r.variance == pytest.approx(expected["delong_var"][k], abs=TOL)
        assert stats.auc(y, x[k]) == pytest.approx(expected["auc"][k], abs=TOL)


def test_covariances(asah, expected):
    y, x, _ = asah
    for pair, value in expected["delong_cov"].items():
        a, b = pair.split(",")
        _, cov = delong_cov(y, x[a], x[b])
        assert cov[0, 1] == pytest.approx(value, abs=TOL)


def test_ci(asah, expected):
    y, x, df = asah
    low, auc, high = expected["ci_auc_delong_95"]["ndka"]
    r = delong_auc(y, x["ndka"])
    assert (r.low, r.auc, r.high) == pytest.approx((low, auc, high), abs=TOL)
    f = (df.gender == "Female").to_numpy()
    low, auc, high = expected["ci_auc_delong_95"]["ndka_female_subset"]
    r = delong_auc(y[f], x["ndka"][f])
    assert (r.low, r.auc, r.high) == pytest.approx((low, auc, high), abs=1e-9)


@pytest.mark.parametrize("name", ["wfns_vs_s100b", "wfns_vs_ndka", "ndka_vs_s100b"])
def test_paired(asah, expected, name):
    y, x, _ = asah
    a, b = name.split("_vs_")
    e = expected["roc_test_delong_paired"][name]
    r = delong_test(y, x[a], x[b])
    assert r.statistic == pytest.approx(e["Z"], abs=TOL)
    assert r.p_value == pytest.approx(e["p"], abs=TOL)
    assert (r.low, r.high) == pytest.approx(tuple(e["ci_diff_95"]), abs=TOL)
    if "p_greater" in e:
        assert delong_test(y, x[a], x[b], alternative="greater").p_value == pytest.approx(e["p_greater"], abs=TOL)
        assert delong_test(y, x[a], x[b], alternative="less").p_value == pytest.approx(e["p_less"], abs=TOL)


def test_identical_curves(asah, expected):
    y, x, _ = asah
    r = delong_test(y, x["wfns"], x["wfns"])
    assert r.statistic == expected["roc_test_delong_paired"]["identical_curves"]["Z"]
    assert r.p_value == expected["roc_test_delong_paired"]["identical_curves"]["p"]


@pytest.mark.parametrize("name", ["wfns_vs_s100b", "wfns_vs_ndka", "ndka_vs_s100b"])
def test_unpaired(asah, expected, name):
    y, x, _ = asah
    a, b = name.split("_vs_")
    e = expected["roc_test_delong_unpaired"][name]
    r = delong_test_unpaired(y, x[a], y, x[b])
    assert r.statistic == pytest.approx(e["D"], abs=TOL)
    assert r.p_value == pytest.approx(e["p"], abs=TOL)
    if "p_greater" in e:
        assert delong_test_unpaired(y, x[a], y, x[b], "greater").p_value == pytest.approx(e["p_greater"], abs=TOL)
        assert delong_test_unpaired(y, x[a], y, x[b], "less").p_value == pytest.approx(e["p_less"], abs=TOL)


def test_near_ties_exact(expected):
    e = expected["near_ties"]
    y = (np.array(e["response"]) == e["case_level"]).astype(int)
    s = np.array([float(v) for v in e["predictor"]])
    assert delong_auc(y, s).auc == e["expected_auc"]


@pytest.mark.parametrize("y,s,match", [
    ([1, 1, 1], [0.1, 0.2, 0.3], "at least 2 cases and 2 controls"),
    ([1, 0, 1, 0], [0.1, np.nan, 0.3, 0.2], "NaN"),
    ([1, 0, 1], [0.1, 0.2], "length mismatch"),
])
def test_bad_input(y, s, match):
    with pytest.raises(ValueError, match=match):
        delong_auc(y, s)
