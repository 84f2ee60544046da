"""The interval and the p-value of one paired comparison, both from one bootstrap distribution.

The p-value is the achieved significance level of the interval method (test inversion): the
interval at level L is the set of differences delta that the test of H0: difference = delta does not
reject at 1 - L. Both are read off the same sorted replicates with the same counting rule, so a
level-L interval excludes 0 exactly when the two-sided p < 1 - L, in every data set, not only on
average. The counting rule is the Monte-Carlo one of Davison & Hinkley (1997, eq. 4.11): the one-sided
tail beyond delta is ``(1 + #{replicates on that side of delta}) / (B + 1)``; a bound is the most
extreme replicate whose tail is still at least ``(1 - L) / 2``.

* percentile: the tails as they are.
* basic: the percentile rule applied to the replicates reflected about the estimate (``2 d - d*``).
* BCa: each tail mapped through the BCa level adjustment (bias z0, acceleration a; Efron &
  Tibshirani 1993, 14.3). When z0 or a is undefined (every replicate on one side of the estimate) or
  so extreme that a 99 % interval's adjusted tail would reach past the replicates, the percentile
  rule is used instead and ``note`` says why (judged at that fixed tail, so the rule, and with it the
  p-value, does not depend on the level the interval is asked at).

The two-sided p is twice the smaller one-sided tail, so it is never below ``2 / (B + 1)``
(one-sided: ``1 / (B + 1)``): ``p_floor``. A p at the floor means "below what B resamples resolve".
The agreement is with a decimal alpha (0.05: a p of exactly 0.05 is not below it, and its interval
keeps 0); a one-sided p agrees with the one-sided bound of a two-sided interval at level 1 - 2 alpha.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
from scipy.special import ndtr, ndtri

Alternative = Literal["two-sided", "greater", "less"]


@dataclass(frozen=True)
class Inversion:
    low: float
    high: float
    p_value: float
    method: str        # the rule used: "bca", "percentile" or "basic"
    note: str          # why BCa fell back to the percentile rule; "" otherwise
    n_resamples: int   # finite replicates the interval and p came from
    p_floor: float     # the smallest p these resamples can give
    p_two_sided: float  # = p_value for a two-sided test; what compare and the leaderboard show

    @property
    def at_floor(self) -> bool:
        return self.p_value <= self.p_floor * (1 + 1e-9)


def bca_constants(estimate: float, replicates: np.ndarray, jackknife: np.ndarray | None) -> tuple[float, float]:
    """BCa's bias correction z0 (weak/strict percentile of the estimate among the replicates, as in
    scipy) and acceleration a (from the jackknife; 0 without one)."""
    share = ((replicates < estimate).sum() + (replicates <= estimate).sum()) / (2 * len(replicates))
    z0 = float(ndtri(share))
    if jackknife is None:
        return z0, 0.0
    if not np.all(np.isfinite(jackknife)):  # a leave-one-out without a value: the acceleration is undefined
        return z0, float("nan")
    dev = jackknife.mean() - jackknife
    den = float((dev ** 2).sum())
    return z0, float((dev ** 3).sum() / (6 * den ** 1.5)) if den > 0 else 0.0


def _bca_level(q: np.ndarray, z0: float, acc: float) -> np.ndarray:
    """The nominal one-sided level whose BCa-adjusted lower percentile is ``q`` (non-decreasing in q)."""
    w = ndtri(np.clip(q, 1e-300, 1 - 1e-16)) - z0
    den = 1 + acc * w
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = np.where(den > 0, w / np.where(den > 0, den, 1.0), np.where(w < 0, -np.inf, np.inf))
    return ndtr(inner - z0)


def _tail_maps(estimate: float, r: np.ndarray, method: str, level: float,
               jackknife: np.ndarray | None) -> tuple[Callable, Callable, str, str]:
    """(lower-tail map, upper-tail map, rule used, fallback note)."""
    identity = (lambda q: q, lambda q: q)
    if method != "bca":
        return (*identity, method, "")
    z0, acc = bca_constants(estimate, r, jackknife)
    if not np.isfinite(z0) or not np.isfinite(acc):
        why = ("every replicate lies on one side of the estimate" if not np.isfinite(z0)
               else "a leave-one-out value is undefined")
        return (*identity, "percentile", f"BCa undefined ({why}): percentile interval")

    def lower(q):
        return _bca_level(q, z0, acc)

    def upper(q):
        return 1 - _bca_level(1 - np.asarray(q), z0, acc)

    # "Extreme": the adjusted tails of the outermost replicate do not reach 0.5 % (a 99 % interval's
    # tail), or the innermost do not reach the middle. Judged at a fixed tail, not at ``level``, so the
    # rule used (and the p-value) is the same whatever level the interval is asked at (up to 99 %).
    a, b = min((1 - level) / 2, 0.005), len(r)
    edge, one = 1 / (b + 1), 1.0
    if not (lower(edge) < a and upper(edge) < a and lower(one) >= 0.5 and upper(one) >= 0.5):
        return (*identity, "percentile",
                f"BCa correction extreme (z0 {z0:.2f}, a {acc:.3f}: its interval would reach past the replicates): "
                f"percentile interval")
    return lower, upper, "bca", ""


def invert(estimate: float, replicates: np.ndarray, method: str = "percentile", level: float = 0.95,
           alternative: Alternative = "two-sided", jackknife: np.ndarray | None = None,
           bounds: tuple[float, float] = (-np.inf, np.inf)) -> Inversion:
    """Interval (at ``level``, two-sided) and p-value of H0: difference = 0 (``alternative``) from the
    bootstrap ``replicates`` of a difference whose estimate is ``estimate``; non-finite replicates are
    dropped. ``bounds``: the range the difference can take (an interval never leaves it)."""
    if method not in ("bca", "percentile", "basic"):
        raise ValueError(f"method must be 'bca', 'percentile' or 'basic', not {method!r}")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', not {alternative!r}")
    if not np.isfinite(estimate):
        raise ValueError(f"the estimate is {estimate}: no interval or test")
    r = np.sort(np.asarray(replicates, dtype=float)[np.isfinite(replicates)])
    b = len(r)
    a = (1 - level) / 2
    if b == 0:
        raise ValueError("no bootstrap replicate could be computed (every resample was degenerate)")
    if 1 / (b + 1) >= a:
        raise ValueError(f"{b} usable resamples cannot resolve a {level:.0%} interval; use at least "
                         f"{int(np.ceil(1 / a))} resamples")
    if method == "basic":  # the percentile rule on the replicates reflected about the estimate
        r, estimate_r = np.sort(2 * estimate - r), estimate
    else:
        estimate_r = estimate
    lower, upper, used, note = _tail_maps(estimate_r, r, method, level, jackknife)
    if method == "basic":
        used = "basic"
    # lower-tail share at each replicate (ties counted together), and upper-tail share
    at_or_below = np.searchsorted(r, r, side="right")
    at_or_above = b - np.searchsorted(r, r, side="left")
    keep = a * (1 - 1e-12)  # a tail equal to a is not rejected (1 - 0.95 is not exactly 0.05 in binary)
    low = r[int(np.argmax(lower((1 + at_or_below) / (b + 1)) >= keep))]
    ok_high = upper((1 + at_or_above) / (b + 1)) >= keep
    high = r[b - 1 - int(np.argmax(ok_high[::-1]))]
    p_greater = float(lower((1 + np.sum(r <= 0)) / (b + 1)))  # small when the replicates lie above 0
    p_less = float(upper((1 + np.sum(r >= 0)) / (b + 1)))
    floor = (2 if alternative == "two-sided" else 1) / (b + 1)
    two = float(min(1.0, max(2 * min(p_greater, p_less), 2 / (b + 1))))
    p = {"greater": p_greater, "less": p_less}.get(alternative, two)
    lo_b, hi_b = bounds
    return Inversion(float(min(max(low, lo_b), hi_b)), float(min(max(high, lo_b), hi_b)),
                     float(min(1.0, max(p, floor))), used, note, b, floor, two)


def format_p(p: float, floor: float | None = None) -> str:
    """A p-value for people: ``< 0.0002`` at the bootstrap's floor, else three significant digits."""
    if p is None or not np.isfinite(p):
        return "–"
    if floor is not None and p <= floor * (1 + 1e-9):
        return f"< {floor:.2g}"
    return f"{p:.3g}"
