"""Bland-Altman against pingouin and the published formulas; repeated-measures variant."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats as ss  # noqa: E402

from cardiobench import stats  # noqa: E402


def _pair(n=60, seed=0, slope=0.0):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(20, 75, n)
    a = truth + rng.normal(0, 3, n)
    b = truth * (1 + slope) + 1.5 + rng.normal(0, 4, n)
    return a, b


def test_matches_pingouin_plot_numbers():
    """pingouin draws bias, limits, the bias t-CI and the 1986 limit CIs: ours must equal them."""
    import pingouin as pg

    a, b = _pair()
    fig, ax = plt.subplots()
    pg.plot_blandaltman(a, b, agreement=1.96, confidence=0.95, ax=ax)
    lines = sorted(ln.get_ydata()[0] for ln in ax.lines if ln.get_ydata()[0] != 0)
    spans = sorted(v for p in ax.patches for v in (p.get_y(), p.get_y() + p.get_height()))
    plt.close(fig)
    r = stats.bland_altman(a, b, ci="bland1986")
    assert lines == pytest.approx([r.lower, r.bias, r.upper], abs=1e-10)
    assert spans == pytest.approx([r.lower_low, r.lower_high, r.bias_low, r.bias_high, r.upper_low, r.upper_high],
                                  abs=1e-10)


def test_approx_is_bland_altman_1999_formula():
    a, b = _pair(n=40, seed=1)
    d = a - b
    n, s, m = len(d), d.std(ddof=1), d.mean()
    se = s * np.sqrt(1 / n + 1.96**2 / (2 * (n - 1)))
    t = ss.t.ppf(0.975, n - 1)
    r = stats.bland_altman(a, b, ci="approx")
    assert (r.upper_low, r.upper_high) == pytest.approx((m + 1.96 * s - t * se, m + 1.96 * s + t * se), rel=1e-12)
    assert (r.lower_low, r.lower_high) == pytest.approx((m - 1.96 * s - t * se, m - 1.96 * s + t * se), rel=1e-12)
    assert (r.bias_low, r.bias_high) == pytest.approx(ss.t.interval(0.95, n - 1, m, s / np.sqrt(n)), rel=1e-12)


def test_exact_limit_is_one_sided_tolerance_factor():
    """The exact upper bound of mu + z*sigma is mean + k*s with k the one-sided normal tolerance
    factor: n = 10, 95 % content, 95 % confidence gives k = 2.911 (NIST/SEMATECH e-Handbook 7.2.6.3)."""
    x = np.array([-1.0, 1.0] * 5) / np.sqrt(10 / 9)  # mean 0, sd 1
    r = stats.bland_altman(x, np.zeros(10), agreement=ss.norm.ppf(0.95), level=0.90, ci="exact")
    assert r.upper_high == pytest.approx(2.911, abs=5e-4)
    # Symmetric: the lower limit's lower bound mirrors it.
    assert r.lower_low == pytest.approx(-2.911, abs=5e-4)


def test_exact_ci_has_exact_coverage_and_approx_converges():
    rng = np.random.default_rng(7)
    z, n, reps = 1.96, 15, 2000
    true_upper = 2 + z * 3
    hits = 0
    for _ in range(reps):
        d = rng.normal(2, 3, n)
        r = stats.bland_altman(d, np.zeros(n), ci="exact")
        hits += r.upper_low <= true_upper <= r.upper_high
    assert 0.935 <= hits / reps <= 0.965
    a, b = _pair(n=5000, seed=3)
    ex, ap = stats.bland_altman(a, b, ci="exact"), stats.bland_altman(a, b, ci="approx")
    assert ex.upper_high == pytest.approx(ap.upper_high, abs=0.01 * (ap.upper_high - ap.upper_low))


def test_proportional_bias_slope():
    a, b = _pair(n=300, seed=4, slope=0.2)
    r = stats.bland_altman(a, b)
    reg = ss.linregress((a + b) / 2, a - b)
    assert r.slope == pytest.approx(reg.slope) and r.slope_p == pytest.approx(reg.pvalue)
    assert r.slope < 0 and r.slope_p < 1e-6 and r.slope_low < r.slope < r.slope_high
    flat = stats.bland_altman(*_pair(n=300, seed=5))
    assert flat.slope_low < 0 < flat.slope_high


def test_repeated_measures():
    rng = np.random.default_rng(8)
    k, per = 400, 4
    subject = np.repeat(np.arange(k), per)
    between = rng.normal(0, 2, k)[subject]
    d = 1 + between + rng.normal(0, 1, k * per)
    r = stats.bland_altman_repeated(d, np.zeros_like(d), subject)
    assert r.sd_within == pytest.approx(1, rel=0.05) and r.sd_between == pytest.approx(2, rel=0.08)
    assert r.sd == pytest.approx(np.sqrt(5), rel=0.05)
    # Ignoring the clustering still gets the SD roughly right but not the components; unbalanced works too.
    keep = rng.random(len(d)) < 0.7
    r2 = stats.bland_altman_repeated(d[keep], np.zeros(keep.sum()), subject[keep])
    assert r2.sd == pytest.approx(np.sqrt(5), rel=0.08)
    with pytest.raises(ValueError, match="repeated"):
        stats.bland_altman_repeated([1.0, 2.0], [0.0, 0.0], [0, 1])


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        stats.bland_altman([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least 3"):
        stats.bland_altman([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="ci must be"):
        stats.bland_altman([1.0, 2.0, 4.0], [1.0, 2.5, 3.0], ci="wrong")
