"""Bland-Altman agreement: bias, limits of agreement with CIs, proportional bias, repeated measures.

Differences are ``a - b``. Limits are ``bias -/+ agreement * sd`` with the sample SD (ddof 1).
CIs of the limits:

* ``exact``: the non-central t interval (Carkeet 2015, Shieh 2018). With ``T ~ nct(n - 1, z sqrt(n))``,
  ``mu + z sigma = mean + s T / sqrt(n)`` exactly under normality, so the quantiles of ``T`` bound it.
* ``approx``: Bland & Altman 1999, ``limit -/+ t(n-1) * s * sqrt(1/n + z^2 / (2 (n - 1)))``.
* ``bland1986``: Bland & Altman 1986, ``SE = sqrt(3 s^2 / n)`` with t(n-1) (what pingouin draws).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal, Sequence

import numpy as np
from scipy import stats as ss

from .bootstrap import check_arrays

LimitsCI = Literal["exact", "approx", "bland1986"]


@dataclass(frozen=True)
class BlandAltman:
    bias: float
    sd: float
    n: int
    lower: float
    upper: float
    bias_low: float
    bias_high: float
    lower_low: float
    lower_high: float
    upper_low: float
    upper_high: float
    slope: float
    intercept: float
    slope_low: float
    slope_high: float
    slope_p: float
    agreement: float
    level: float
    ci: str

    def __repr__(self) -> str:
        return (f"BlandAltman(bias {self.bias:.4g} [{self.bias_low:.4g}, {self.bias_high:.4g}], "
                f"LoA {self.lower:.4g} [{self.lower_low:.4g}, {self.lower_high:.4g}] to {self.upper:.4g} "
                f"[{self.upper_low:.4g}, {self.upper_high:.4g}], {self.level:.0%} {self.ci}; "
                f"proportional bias slope {self.slope:.3g} (p={self.slope_p:.3g}), n={self.n})")

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def limits_ci(bias: float, sd: float, n: int, agreement: float, level: float,
              ci: LimitsCI) -> tuple[tuple[float, float], tuple[float, float]]:
    """((lower_low, lower_high), (upper_low, upper_high)) for the limits bias -/+ agreement*sd."""
    q = 1 - (1 - level) / 2
    if ci == "exact":
        t_lo, t_hi = ss.nct.ppf([1 - q, q], df=n - 1, nc=agreement * np.sqrt(n)) * sd / np.sqrt(n)
        return (bias - t_hi, bias - t_lo), (bias + t_lo, bias + t_hi)
    if ci == "approx":
        se = sd * np.sqrt(1 / n + agreement**2 / (2 * (n - 1)))
    elif ci == "bland1986":
        se = np.sqrt(3 * sd**2 / n)
    else:
        raise ValueError(f"ci must be 'exact', 'approx' or 'bland1986', not {ci!r}")
    half = ss.t.ppf(q, n - 1) * se
    lower, upper = bias - agreement * sd, bias + agreement * sd
    return (lower - half, lower + half), (upper - half, upper + half)


def bland_altman(a: Sequence, b: Sequence, agreement: float = 1.96, level: float = 0.95,
                 ci: LimitsCI = "exact") -> BlandAltman:
    """Bland-Altman analysis of ``a - b`` with CIs of bias and limits, and proportional bias.

    Proportional bias: ordinary least squares of the difference on the pair mean (Bland &
    Altman 1999, section 3.2); its slope gets a t CI and a two-sided p-value for slope = 0.
    """
    a, b = check_arrays(a, b, names=["a", "b"])
    n = len(a)
    if n < 3:
        raise ValueError(f"Bland-Altman needs at least 3 pairs, got {n}")
    d, m = a - b, (a + b) / 2
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    q = 1 - (1 - level) / 2
    half = ss.t.ppf(q, n - 1) * sd / np.sqrt(n)
    (ll, lh), (ul, uh) = limits_ci(bias, sd, n, agreement, level, ci)
    if np.ptp(m) > 0:
        reg = ss.linregress(m, d)
        t = ss.t.ppf(q, n - 2)
        slope, intercept, s_lo, s_hi, s_p = (reg.slope, reg.intercept, reg.slope - t * reg.stderr,
                                             reg.slope + t * reg.stderr, reg.pvalue)
    else:
        slope = intercept = s_lo = s_hi = s_p = float("nan")
    return BlandAltman(bias, sd, n, bias - agreement * sd, bias + agreement * sd, bias - half, bias + half,
                       float(ll), float(lh), float(ul), float(uh), float(slope), float(intercept), float(s_lo),
                       float(s_hi), float(s_p), agreement, level, ci)


@dataclass(frozen=True)
class BlandAltmanRepeated:
    bias: float
    sd: float
    sd_within: float
    sd_between: float
    lower: float
    upper: float
    n: int
    n_subjects: int
    agreement: float

    def __repr__(self) -> str:
        return (f"BlandAltmanRepeated(bias {self.bias:.4g}, LoA {self.lower:.4g} to {self.upper:.4g}, "
                f"sd {self.sd:.4g} (within {self.sd_within:.4g}, between {self.sd_between:.4g}), "
                f"{self.n} pairs from {self.n_subjects} subjects)")

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def bland_altman_repeated(a: Sequence, b: Sequence, subject: Sequence, agreement: float = 1.96) -> BlandAltmanRepeated:
    """Limits of agreement with several pairs per subject (Bland & Altman 2007, true value varying).

    One-way ANOVA of the differences by subject: the within-subject variance is MS_within, the
    between-subject component (MS_between - MS_within) / divisor with divisor
    ``(N^2 - sum m_i^2) / ((k - 1) N)``; the SD of a difference is the root of their sum.
    """
    a, b = check_arrays(a, b, names=["a", "b"])
    subject = np.asarray(subject)
    if len(subject) != len(a):
        raise ValueError(f"subject has {len(subject)} values for {len(a)} pairs")
    d = a - b
    _, codes = np.unique(subject, return_inverse=True)
    k, big_n = int(codes.max()) + 1, len(d)
    if k < 2 or big_n <= k:
        raise ValueError(f"need at least 2 subjects and some with repeated pairs; got {big_n} pairs, {k} subjects")
    m = np.bincount(codes, minlength=k).astype(float)
    means = np.bincount(codes, weights=d, minlength=k) / m
    ms_within = float(np.sum((d - means[codes]) ** 2) / (big_n - k))
    ms_between = float(np.sum(m * (means - d.mean()) ** 2) / (k - 1))
    divisor = (big_n**2 - np.sum(m**2)) / ((k - 1) * big_n)
    var_between = max(0.0, (ms_between - ms_within) / divisor)
    sd = float(np.sqrt(var_between + ms_within))
    bias = float(d.mean())
    return BlandAltmanRepeated(bias, sd, float(np.sqrt(ms_within)), float(np.sqrt(var_between)),
                               bias - agreement * sd, bias + agreement * sd, big_n, k, agreement)
