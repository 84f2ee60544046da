"""Bootstrap index draws (stats/sampling.py) against numpy's ``Generator.integers``: exactly uniform,
including where the multiply-shift map alone would not be."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as ss

from cardiobench.stats.sampling import uniform_indices


def _chi2_p(values: np.ndarray, bins: int) -> float:
    return ss.chisquare(np.bincount(values, minlength=bins)).pvalue


def test_same_distribution_as_numpy_integers_on_a_small_range():
    ours = uniform_indices(np.random.default_rng(0), 7, 700_000)
    numpy = np.random.default_rng(0).integers(0, 7, 700_000)
    assert ours.dtype == np.int64 and ours.min() == 0 and ours.max() == 6
    assert _chi2_p(ours, 7) > 1e-3 and _chi2_p(numpy, 7) > 1e-3
    # the two samples come from one distribution (a two-sample chi-square on the 7 counts)
    table = np.stack([np.bincount(ours, minlength=7), np.bincount(numpy, minlength=7)])
    assert ss.chi2_contingency(table).pvalue > 1e-3


def test_rejection_keeps_a_range_of_three_quarters_of_two_to_the_32_uniform():
    # floor(u * 3/4) alone hits every value divisible by 3 from two words and the others from one
    # (P(k % 3 == 0) = 1/2); the rejection step (a quarter of the words here) makes it 1/3.
    high = 3 << 30
    k = uniform_indices(np.random.default_rng(1), high, 300_000)
    assert k.min() >= 0 and k.max() < high
    assert _chi2_p(k % 3, 3) > 1e-3
    words = np.random.default_rng(1).bit_generator.random_raw(150_000).view(np.uint32)
    plain = (words.astype(np.uint64) * np.uint64(high)) >> np.uint64(32)
    assert _chi2_p((plain % 3).astype(np.int64), 3) < 1e-6  # the test sees the bias it guards against


def test_seeded_shape_and_edges():
    a = uniform_indices(np.random.default_rng(5), 10_000, (3, 4))
    b = uniform_indices(np.random.default_rng(5), 10_000, (3, 4))
    assert a.shape == (3, 4) and a.dtype == np.int64 and np.array_equal(a, b)
    assert np.array_equal(uniform_indices(np.random.default_rng(0), 1, 5), np.zeros(5, np.int64))
    big = uniform_indices(np.random.default_rng(0), 1 << 40, 1000)  # beyond 32 bits: numpy's draws
    assert big.max() < 1 << 40 and big.max() > 1 << 32
    assert uniform_indices(np.random.default_rng(0), 9, 3).shape == (3,)  # odd count: half a word unused
    with pytest.raises(ValueError, match="at least 1"):
        uniform_indices(np.random.default_rng(0), 0, 3)
