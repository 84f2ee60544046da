"""Bootstrap CIs against scipy.stats.bootstrap, cluster resampling, and input validation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as ss
from sklearn.metrics import r2_score

from cardiobench import stats
from cardiobench.stats.metrics import auc, midrank


def _mae(a, b, axis=-1):
    return np.abs(a - b).mean(axis=axis)


def _skewed_mae_data():
    """Lognormal errors, n = 30: BCa's upper bound sits ~28 % of the width above the percentile one."""
    rng = np.random.default_rng(2)
    y = rng.normal(50, 10, 30)
    return y, y + rng.lognormal(0, 1.5, 30)


def test_bca_equals_scipy_on_the_same_resamples():
    y, p = _skewed_mae_data()
    ref = ss.bootstrap((y, p), _mae, paired=True, method="BCa", n_resamples=9999, random_state=0)
    reps = ref.bootstrap_distribution
    ours = stats.bootstrap_ci("mae", y, p, method="bca", replicates=reps)
    ci = ref.confidence_interval
    width = ci.high - ci.low
    # The data must tell BCa from the percentile interval, or this test could not fail on a mix-up.
    perc = np.percentile(reps, [2.5, 97.5])
    assert max(abs(perc[0] - ci.low), abs(perc[1] - ci.high)) > 0.10 * width
    assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high), abs=1e-12 * width)
    # The basic interval, likewise from scipy's own resamples.
    basic = ss.bootstrap((y, p), _mae, paired=True, method="basic", n_resamples=9999, random_state=0)
    ours_basic = stats.bootstrap_ci("mae", y, p, method="basic", replicates=basic.bootstrap_distribution)
    assert (ours_basic.low, ours_basic.high) == pytest.approx(
        (basic.confidence_interval.low, basic.confidence_interval.high), abs=1e-12 * width)


@pytest.mark.parametrize("method", ["percentile", "basic", "bca"])
def test_own_resamples_agree_with_scipy(method):
    y, p = _skewed_mae_data()
    ours = stats.bootstrap_ci("mae", y, p, method=method, n_resamples=9999, seed=0)
    ref = ss.bootstrap((y, p), _mae, paired=True, method="BCa" if method == "bca" else method,
                       n_resamples=9999, random_state=0).confidence_interval
    width = ref.high - ref.low
    # Different random streams: agree within Monte-Carlo error (a few % of the width; the
    # percentile/BCa gap on these data is 28 %).
    assert abs(ours.low - ref.low) < 0.05 * width and abs(ours.high - ref.high) < 0.05 * width
    assert ours.estimate == pytest.approx(_mae(y, p))


def test_bca_coverage_fast():
    """95 % BCa of a skewed mean (gamma, shape 2), n = 200: 1 000 seeded replications in seconds."""
    rng = np.random.default_rng(20261123)
    reps, hits = 1000, 0
    for _ in range(reps):
        x = rng.gamma(2, 1, 200)
        r = stats.bootstrap_ci("mean", x, n_resamples=999, method="bca", seed=rng)
        hits += r.low <= 2.0 <= r.high
    assert 0.93 <= hits / reps <= 0.97, f"coverage {hits / reps:.3f}"


def test_callable_equals_named_fast_path():
    rng = np.random.default_rng(2)
    y, p = rng.normal(size=200), rng.normal(size=200)
    g = np.repeat(np.arange(40), 5)
    fast = stats.bootstrap_ci("mae", y, p, groups=g, n_resamples=2000, seed=5)
    slow = stats.bootstrap_ci(lambda a, b: np.abs(a - b).mean(), y, p, groups=g, n_resamples=2000, seed=5)
    assert fast.low == pytest.approx(slow.low) and fast.high == pytest.approx(slow.high)


def test_named_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    y, p = rng.normal(size=100), rng.normal(size=100)
    assert stats.r2(y, p) == pytest.approx(r2_score(y, p))
    assert stats.mae(y, p) == pytest.approx(np.mean(np.abs(y - p)))
    assert stats.rmse(y, p) == pytest.approx(np.sqrt(np.mean((y - p) ** 2)))


def test_cluster_bootstrap_is_wider_and_covers():
    """10 rows per patient, strongly correlated within patient: resample patients, not rows."""
    rng = np.random.default_rng(4)
    covered_rows = covered_pat = 0
    widths = []
    reps = 150
    for _ in range(reps):
        patient = rng.normal(0, 1, 30)
        x = np.repeat(patient, 10) + rng.normal(0, 0.2, 300)
        g = np.repeat(np.arange(30), 10)
        r_rows = stats.bootstrap_ci("mean", x, method="percentile", n_resamples=500, seed=rng)
        r_pat = stats.bootstrap_ci("mean", x, method="percentile", n_resamples=500, groups=g, seed=rng)
        covered_rows += r_rows.low <= 0 <= r_rows.high
        covered_pat += r_pat.low <= 0 <= r_pat.high
        widths.append((r_pat.high - r_pat.low) / (r_rows.high - r_rows.low))
    assert np.median(widths) > 2.5
    assert covered_pat / reps > 0.88
    assert covered_rows / reps < 0.6


def test_stratified_keeps_class_sizes():
    y = np.r_[np.ones(10), np.zeros(90)]
    s = np.r_[np.linspace(0.5, 1, 10), np.linspace(0, 0.8, 90)]
    r = stats.bootstrap_ci("auc", y, s, strata=y, n_resamples=300, method="percentile")
    assert 0 < r.low <= r.estimate <= r.high <= 1


def test_auc_and_midrank():
    assert list(midrank([3, 1, 3, 2])) == [3.5, 1.0, 3.5, 2.0]
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auc([0, 1], [0.5, 0.5]) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        auc([1, 1], [0.2, 0.3])


@pytest.mark.parametrize("bad,match", [
    (([1.0, np.nan, 2.0], [1.0, 2.0, 3.0]), "NaN or inf"),
    (([1.0, 2.0], [1.0, 2.0, 3.0]), "length mismatch"),
    (([1.0], [1.0]), "at least 2"),
])
def test_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        stats.bootstrap_ci("mae", *bad)


def _rms(x, axis=-1):
    return np.sqrt(np.mean(x * x, axis=axis))


def test_vectorized_statistic_equals_the_scalar_callable_and_scipy():
    x = np.random.default_rng(3).gamma(2, 2, 400)
    vec = stats.bootstrap_ci(_rms, x, n_resamples=3000, seed=0)  # vectorised: its signature has axis
    one = stats.bootstrap_ci(lambda v: float(_rms(v)), x, n_resamples=3000, seed=0)
    assert (vec.low, vec.high) == pytest.approx((one.low, one.high), rel=1e-12)  # same draws, same jackknife
    ref = ss.bootstrap((x,), _rms, vectorized=True, method="BCa", n_resamples=3000, random_state=0).confidence_interval
    width = ref.high - ref.low
    assert abs(vec.low - ref.low) < 0.1 * width and abs(vec.high - ref.high) < 0.1 * width
    forced = stats.bootstrap_ci(lambda v, axis=-1: _rms(v, axis), x, n_resamples=3000, seed=0, vectorized=False)
    assert (forced.low, forced.high) == pytest.approx((one.low, one.high), rel=1e-12)


def test_vectorized_paired_difference_equals_the_scalar_one():
    rng = np.random.default_rng(4)
    y = rng.normal(50, 10, 300)
    a, b = y + rng.normal(0, 3, 300), y + rng.normal(0, 4, 300)

    def rmse_axis(t, p, axis=-1):
        return np.sqrt(np.mean((t - p) ** 2, axis=axis))

    vec = stats.paired_bootstrap_diff(rmse_axis, y, a, b, n_resamples=2000, seed=0)
    one = stats.paired_bootstrap_diff(lambda t, p: float(rmse_axis(t, p)), y, a, b, n_resamples=2000, seed=0)
    assert (vec.low, vec.high, vec.p_value) == pytest.approx((one.low, one.high, one.p_value), rel=1e-12)


def test_np_mean_takes_the_named_mean_path():
    from cardiobench.stats.bootstrap import _resolve
    from cardiobench.stats.metrics import MEAN
    assert _resolve(np.mean)[1] is MEAN
    x = np.random.default_rng(5).normal(size=500)
    assert stats.bootstrap_ci(np.mean, x, seed=1).as_dict() == stats.bootstrap_ci("mean", x, seed=1).as_dict()


def test_jackknife_streams_and_vectorized_blocks_leave_out_each_row():
    import tracemalloc

    from cardiobench.stats.bootstrap import _leave_one_out_block, _Resampler, jackknife
    x = np.arange(7.0)
    block = _leave_one_out_block(x, 2, 5)
    assert block.tolist() == [[0, 1, 3, 4, 5, 6], [0, 1, 2, 4, 5, 6], [0, 1, 2, 3, 5, 6]]
    y = np.random.default_rng(6).normal(size=3001)
    res = _Resampler(len(y), None, None)
    assert np.allclose(jackknife(_rms, [y], res, vectorized=True),
                       [_rms(np.delete(y, i)) for i in range(len(y))], rtol=1e-13)
    n = 12_000  # all leave-one-out index arrays at once would be n^2 * 8 bytes = 1.1 GB
    z = np.random.default_rng(7).normal(size=n)
    tracemalloc.start()
    try:
        jack = jackknife(lambda v: float(np.median(v)), [z], _Resampler(n, None, None))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(jack) == n and peak < 10 * n * 8 * 4  # O(n): a few n-length arrays


@pytest.mark.parametrize("groups", [None, "clusters"])
def test_auc_replicates_equal_the_one_at_a_time_auc_on_the_same_draws(groups):
    """The vectorised AUC replicates (multiplicity-weighted Mann-Whitney over tied-score groups) equal the
    AUC computed on each resample's rows, drawn one resample at a time from the same generator."""
    from cardiobench.stats import bootstrap as bs

    rng = np.random.default_rng(3)
    n = 60
    y = rng.random(n) < 0.3
    score = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounded: many ties across and within classes
    g = np.repeat(np.arange(20), 3) if groups else None
    res = bs._Resampler(n, g, None)
    fast = bs._auc_replicates(y, score, 300, np.random.default_rng(7), res, batch=1)
    slow = bs._draw_replicates(lambda a, b: bs._resample_auc(a, b), [y, score], 300, np.random.default_rng(7), res)
    assert np.isfinite(fast).sum() > 290
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12, equal_nan=True)
    # blocks of resamples draw other indices but the same distribution
    block = bs._auc_replicates(y, score, 4000, np.random.default_rng(8), res)
    ref = bs._draw_replicates(lambda a, b: bs._resample_auc(a, b), [y, score], 4000, np.random.default_rng(9), res)
    assert abs(np.nanmean(block) - np.nanmean(ref)) < 0.01 and abs(np.nanstd(block) - np.nanstd(ref)) < 0.01
