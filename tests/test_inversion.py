"""Intervals and p-values of a paired comparison agree in every data set, stay in the metric's range,
and are the same wherever the pair is compared (``cardiobench compare``, ``check``, the leaderboard)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats as ss

from cardiobench import stats
from cardiobench.stats.inversion import format_p, invert

N_SETS = 510
B = 999


def _data(rng: np.random.Generator, n: int, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One paired data set of ``n`` samples: truth, model a, model b (b sometimes better, sometimes
    equal, sometimes skewed by a few gross errors)."""
    shift = rng.choice([0.0, 0.0, rng.uniform(0.2, 3.0)])
    if metric == "auc":
        y = np.zeros(n, int)
        y[: max(1, int(round(n * rng.uniform(0.2, 0.6))))] = 1
        rng.shuffle(y)
        base = rng.normal(0, 1, n) + y * rng.uniform(0.3, 2.0)
        return y, base + rng.normal(0, 0.5, n), base + y * shift * 0.3 + rng.normal(0, 0.5, n)
    y = rng.normal(55, 12, n)
    a = y + rng.normal(0, 5, n)
    b = y + rng.normal(0, 5, n) * (1 + shift / 3)
    if rng.random() < 0.3:  # a heavy tail: a few gross errors of one model
        k = max(1, n // 20)
        a[:k] += rng.normal(0, 25, k)
    return y, a, b


@pytest.mark.parametrize("method, n_sets", [("bca", 120), pytest.param("bca", N_SETS, marks=pytest.mark.slow),
                                            pytest.param("percentile", N_SETS, marks=pytest.mark.slow),
                                            pytest.param("basic", N_SETS, marks=pytest.mark.slow)])
def test_interval_excludes_zero_exactly_when_p_below_alpha(method, n_sets):
    """510 paired data sets (-m slow; 120 in the default run), n from 5 to 300, MAE / R² / AUC: the 95 %
    interval excludes 0 exactly when the two-sided p < 0.05 (no boundary skipped), p never below
    2 / (B + 1), every interval inside the range of the difference, each model's own interval inside the
    metric's range, and no warning."""
    rng = np.random.default_rng(2026)
    outcomes = set()
    ranges = {"mae": (-np.inf, np.inf), "r2": (-np.inf, np.inf), "auc": (-1.0, 1.0)}  # R² has no floor
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning here would reach a user's terminal
        for k in range(n_sets):
            metric = ("mae", "r2", "auc")[k % 3]
            n = int(rng.choice([5, 6, 8, 10, 15, 20, 30, 50, 100, 200, 300]))
            y, a, b = _data(rng, n, metric)
            strata = y if metric == "auc" else None
            r = stats.paired_bootstrap_diff(metric, y, a, b, n_resamples=B, method=method, seed=k, strata=strata)
            excludes = r.low > 0 or r.high < 0
            assert excludes == (r.p_value < 0.05), (k, metric, n, r)
            assert r.p_value >= 2 / (B + 1) - 1e-15 and r.p_value <= 1
            lo, hi = ranges[metric]
            assert lo <= r.low <= r.high <= hi, (k, metric, n, r)
            outcomes.add(excludes)
            for pred in (a, b):
                ci = stats.bootstrap_ci(metric, y, pred, n_resamples=B, method=method, seed=k, strata=strata)
                if metric == "r2":
                    assert ci.high <= 1.0, (k, n, ci)
                if metric == "auc":
                    assert 0.0 <= ci.low <= ci.high <= 1.0, (k, n, ci)
    assert outcomes == {True, False}  # both outcomes occurred: the check could fail either way


def test_one_sided_p_matches_the_one_sided_bound():
    rng = np.random.default_rng(3)
    for k in range(120):
        d = rng.normal(rng.uniform(-0.5, 0.5), 1, int(rng.integers(5, 60)))
        for level in (0.8, 0.9, 0.95, 0.99):
            a = (1 - level) / 2
            r = stats.paired_bootstrap_diff_rows("mean", [d], [np.zeros_like(d)], n_resamples=B, method="bca",
                                                 seed=k, level=level, alternative="greater")
            assert (r.low > 0) == (r.p_value < a), (k, level, r)
            assert r.p_two_sided == pytest.approx(min(1.0, max(2 * min(r.p_value, 1), 2 / (B + 1))), abs=1) \
                or r.p_two_sided >= r.p_value


def test_bca_falls_back_to_percentile_and_says_so():
    # every replicate above the estimate: z0 is infinite, BCa undefined
    reps = np.linspace(1.0, 2.0, 999)
    r = invert(0.5, reps, "bca", 0.95, jackknife=np.linspace(0, 1, 10))
    assert r.method == "percentile" and "BCa undefined" in r.note
    assert r.low > 0 and r.p_value < 0.05 and r.at_floor
    assert format_p(r.p_value, r.p_floor) == "< 0.002"


def test_r2_replicates_with_constant_truth_are_dropped_not_huge():
    """A small test set with repeated true values: resamples of one value have no R² (NaN, dropped);
    the rounding in sum(y²) - sum(y)²/n used to give upper bounds of 1e12."""
    y = np.array([60.0, 60.0, 60.0, 60.0, 35.0])
    p = np.array([58.0, 61.0, 63.0, 57.0, 40.0])
    ci = stats.bootstrap_ci("r2", y, p, n_resamples=999, seed=0)
    assert ci.high <= 1.0 and np.isfinite(ci.low)


def test_r2_lm_is_rs_lm_r_squared():
    rng = np.random.default_rng(5)
    y = rng.normal(55, 10, 40)
    p = 0.6 * y + 20 + rng.normal(0, 4, 40)
    fit = ss.linregress(p, y)  # lm(y ~ p): r.squared is the squared correlation
    assert stats.r2_lm(y, p) == pytest.approx(fit.rvalue ** 2, rel=1e-12)
    assert stats.r2(y, p) != pytest.approx(fit.rvalue ** 2, rel=1e-3)  # a different quantity
    assert np.isnan(stats.r2_lm(y, np.full(40, 50.0)))
