"""Paired bootstrap comparisons and the thin test wrappers (Wilcoxon, McNemar, Holm, ICC)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss

from cardiobench import stats


def _two_models(n=300, seed=0, extra_noise_b=0.0):
    rng = np.random.default_rng(seed)
    y = rng.uniform(20, 75, n)
    a = y + rng.normal(0, 5, n)
    b = y + rng.normal(0, 5 + extra_noise_b, n)
    return y, a, b


def test_diff_estimate_and_fast_path_equal_callable():
    y, a, b = _two_models()
    fast = stats.paired_bootstrap_diff("mae", y, a, b, n_resamples=2000, seed=1)
    slow = stats.paired_bootstrap_diff(lambda t, p: np.abs(t - p).mean(), y, a, b, n_resamples=2000, seed=1)
    assert fast.diff == pytest.approx(stats.mae(y, a) - stats.mae(y, b))
    assert (fast.low, fast.high, fast.p_value) == pytest.approx((slow.low, slow.high, slow.p_value))
    assert fast.metric == "mae" and fast.estimate_a == pytest.approx(stats.mae(y, a))


def test_detects_a_real_difference():
    y, a, b = _two_models(extra_noise_b=4)
    r = stats.paired_bootstrap_diff("mae", y, a, b, n_resamples=4999)
    assert r.high < 0 and r.p_value < 0.001
    rr = stats.paired_bootstrap_diff("rmse", y, a, b, n_resamples=999, method="percentile")
    assert rr.high < 0


def test_null_rejection_rate_is_nominal():
    """Exchangeable models: about 5 % of p-values fall below 0.05, and the CI covers 0 about 95 %."""
    rng = np.random.default_rng(2)
    reps, rejections, covers = 300, 0, 0
    for _ in range(reps):
        y, a, b = _two_models(n=80, seed=int(rng.integers(1 << 31)))
        r = stats.paired_bootstrap_diff("mae", y, a, b, n_resamples=999, method="percentile", seed=rng)
        rejections += r.p_value < 0.05
        covers += r.low <= 0 <= r.high
    assert 0.02 <= rejections / reps <= 0.09
    assert 0.91 <= covers / reps <= 0.98


def test_patient_groups_and_auc():
    y, a, b = _two_models(n=200)
    g = np.repeat(np.arange(50), 4)
    r = stats.paired_bootstrap_diff("mae", y, a, b, groups=g, n_resamples=999)
    assert r.n_clusters == 50
    label = (y < 50).astype(int)
    ra = stats.paired_bootstrap_diff("auc", label, -a, -b, n_resamples=300, strata=label)
    assert ra.diff == pytest.approx(stats.auc(label, -a) - stats.auc(label, -b))
    assert ra.low <= ra.diff <= ra.high


def _exact_signed_rank_p(d: np.ndarray) -> float:
    """Two-sided exact p of the signed-rank statistic by enumerating all 2^n sign patterns (no ties)."""
    ranks = np.argsort(np.argsort(np.abs(d))) + 1
    w_plus = ranks[d > 0].sum()
    signs = (np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1
    null = signs @ ranks
    mean = ranks.sum() / 2
    return float(np.mean(np.abs(null - mean) >= abs(w_plus - mean) - 1e-9))


def test_wilcoxon_exact_against_enumeration():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=14), rng.normal(size=14) + 0.8
    r = stats.wilcoxon_signed_rank(x, y)
    assert r.method == "exact"
    assert r.p_value == pytest.approx(_exact_signed_rank_p(x - y), rel=1e-12)
    big = stats.wilcoxon_signed_rank(rng.normal(size=200), rng.normal(size=200))
    assert big.method == "approx"


def test_mcnemar_exact_binomial():
    y = np.ones(40, dtype=int)
    a = np.r_[np.ones(28), np.zeros(12)]   # a right on 28
    b = np.r_[np.ones(18), np.zeros(10), np.ones(2), np.zeros(10)]  # b right on 20; discordant 10 vs 2
    r = stats.mcnemar(y, a, b)
    assert r.p_value == pytest.approx(ss.binomtest(2, 12, 0.5).pvalue)


def test_holm_is_holm_not_holm_sidak():
    adj, rej = stats.holm([0.01, 0.04, 0.03])
    assert list(adj) == pytest.approx([0.03, 0.06, 0.06])
    assert list(rej) == [True, False, False]
    from statsmodels.stats.multitest import multipletests
    assert not np.allclose(multipletests([0.01, 0.04, 0.03])[1], adj)  # statsmodels' default differs


def test_icc_matches_mcgraw_wong_formula():
    rng = np.random.default_rng(4)
    n, k = 30, 3
    truth = rng.normal(50, 10, n)
    x = truth[:, None] + np.array([0.0, 2.0, -1.0]) + rng.normal(0, 3, (n, k))
    df = pd.DataFrame({"patient": np.repeat(np.arange(n), k), "rater": np.tile(np.arange(k), n),
                       "ef": x.ravel()})
    r = stats.icc(df, "patient", "rater", "ef", kind="ICC(A,1)")
    grand = x.mean()
    msr = k * ((x.mean(1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((x.mean(0) - grand) ** 2).sum() / (k - 1)
    mse = ((x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + grand) ** 2).sum() / ((n - 1) * (k - 1))
    assert r.icc == pytest.approx((msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n), rel=1e-9)
    with pytest.raises(ValueError, match="unknown ICC kind"):
        stats.icc(df, "patient", "rater", "ef", kind="ICC9")


@pytest.mark.parametrize("method", ["bca", "percentile", "basic"])
def test_p_value_inverts_the_interval(method):
    """The reported CI and p never disagree: the level-L interval excludes 0 exactly when p < 1 - L.

    Skewed per-patient differences (one patient far off) are where the null-shifted p of a BCa or
    percentile interval used to say p = 0.13 beside a 95 % interval that excluded 0.
    """
    rng = np.random.default_rng(11)
    seen = set()
    for rep in range(40):
        n = int(rng.integers(8, 20))  # few patients, as in a twin's TEST split: BCa's corrections matter
        x = rng.normal(rng.uniform(-0.004, 0.003), 0.004, n)
        x[: int(rng.integers(1, 3))] -= rng.uniform(0.01, 0.05)  # a heavy left tail
        y = np.zeros(n)
        for alternative in ("two-sided", "less", "greater"):
            r0 = stats.paired_bootstrap_diff_rows("mean", [x], [y], n_resamples=1999, method=method, seed=rep,
                                                  alternative=alternative)
            for level in (0.80, 0.90, 0.95, 0.99):
                # one-sided: the bound of a two-sided interval at level 1 - 2 alpha
                lvl = level if alternative == "two-sided" else 2 * level - 1
                r = stats.paired_bootstrap_diff_rows("mean", [x], [y], n_resamples=1999, method=method, seed=rep,
                                                     level=lvl, alternative=alternative)
                excludes = {"two-sided": r.low > 0 or r.high < 0, "less": r.high < 0, "greater": r.low > 0}[alternative]
                if abs(r0.p_value - (1 - level)) < 2 / 2000:
                    continue  # on the boundary, the +1 of the p-value's Monte-Carlo correction decides
                assert excludes == (r0.p_value < 1 - level), (method, alternative, level, r0.p_value, r.low, r.high)
                seen.add(excludes)
    assert seen == {True, False}  # both outcomes occurred: the check could fail either way
