"""Transcendental functions whose results do not depend on the processor.

numpy dispatches ``exp``, ``log``, ``power``, ``arctan2``, ``arctan`` (and ``tan``, ``log1p``,
``expm1``, ``cbrt``, the inverse and hyperbolic functions) on float64 arrays, and several of them on
float32 arrays, to SIMD kernels chosen at import by the widest instruction set the CPU has; the
AVX-512 kernels round differently from the AVX2 ones (measured with numpy 2.4 by switching them off
with ``NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"``). A twin generated with them is
therefore not the same file on every machine, and neither is its data fingerprint. ``sin``, ``cos``,
``sqrt``, ``hypot`` and float32 ``exp``/``log`` gave identical bits on both paths and stay numpy's.

The functions here use only operations IEEE 754 rounds exactly (``+ - * /``, ``sqrt``, ``rint``,
``frexp``, ``ldexp``): argument reduction, then a polynomial evaluated by Horner's rule. They are
accurate to a few units in the last place of float64 (tests compare them with numpy), which is far
below anything a phantom can show, and they give the same bits on every x86-64 machine.
Always float64 in and out; the caller casts, as it did with numpy's.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["exp", "exp_float32", "log", "power", "arctan", "arctan2", "wrap_angle", "dot", "norm"]

# ln 2 split so that n * _LN2_HI is exact for |n| < 2**11 (its low 11 bits are zero)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.0 / math.log(2.0)
# 1/k! for k = 13..0: exp(r) for |r| <= ln(2)/2 to below 1e-17 (r**14/14! < 4e-18)
_EXP_COEF = tuple(1.0 / math.factorial(k) for k in range(13, -1, -1))
# 1/(2k+1) for k = 10..0: atanh series of log, |f| <= 0.1716 (f**22/23 < 1e-18)
_LOG_COEF = tuple(1.0 / (2 * k + 1) for k in range(10, -1, -1))
# (-1)**k/(2k+1) for k = 13..0: arctan series for |t| <= tan(pi/16) (t**28/29 < 1e-20)
_ATAN_COEF = tuple((-1.0) ** k / (2 * k + 1) for k in range(13, -1, -1))


def _horner(x: np.ndarray, coef: tuple[float, ...]) -> np.ndarray:
    out = np.full_like(x, coef[0])
    for c in coef[1:]:
        out = out * x + c
    return out


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def exp(x) -> np.ndarray:
    """e**x: x = n ln 2 + r, |r| <= ln(2)/2, then 2**n * exp(r)."""
    x = _f64(x)
    xc = np.clip(np.where(np.isnan(x), 0.0, x), -1100.0, 1100.0)  # beyond: 0 or inf, and n stays an int
    n = np.rint(xc * _INV_LN2)
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    with np.errstate(over="ignore"):
        out = np.ldexp(_horner(r, _EXP_COEF), n.astype(np.int64))
    return np.where(np.isnan(x), np.nan, out)


def log(x) -> np.ndarray:
    """Natural log: x = m 2**e with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh((m-1)/(m+1))."""
    x = _f64(x)
    ok = np.isfinite(x) & (x > 0)
    xs = np.where(ok, x, 1.0)
    m, e = np.frexp(xs)
    low = m < math.sqrt(0.5)
    m = np.where(low, m * 2.0, m)
    e = (e - low).astype(np.float64)
    f = (m - 1.0) / (m + 1.0)
    log_m = 2.0 * f * _horner(f * f, _LOG_COEF)
    out = e * _LN2_HI + (e * _LN2_LO + log_m)
    out = np.where(x == 0, -np.inf, out)
    out = np.where(np.isposinf(x), np.inf, out)
    return np.where((x < 0) | np.isnan(x), np.nan, out)


def power(base, exponent) -> np.ndarray:
    """base**exponent for base >= 0 (what the twins need): exp(exponent * log(base)); 0**p is 0 for
    p > 0, 1 for p == 0, inf for p < 0; a negative base gives nan."""
    b, p = np.broadcast_arrays(_f64(base), _f64(exponent))
    out = exp(p * log(np.where(b > 0, b, 1.0)))
    zero = np.where(p > 0, 0.0, np.where(p == 0, 1.0, np.inf))
    out = np.where(b == 0, zero, out)
    return np.where(b < 0, np.nan, out)


def arctan(x) -> np.ndarray:
    """arctan by reflection (|x| > 1 -> pi/2 - arctan(1/|x|)) and two half-angle steps."""
    x = _f64(x)
    a = np.abs(x)
    big = a > 1.0
    with np.errstate(divide="ignore"):
        a = np.where(big, 1.0 / np.where(big, a, 1.0), a)
    for _ in range(2):  # arctan(a) = 2 arctan(a / (1 + sqrt(1 + a**2)))
        a = a / (1.0 + np.sqrt(1.0 + a * a))
    t = 4.0 * a * _horner(a * a, _ATAN_COEF)
    t = np.where(big, math.pi / 2 - t, t)
    return np.where(np.isnan(x), np.nan, np.copysign(t, x))


def arctan2(y, x) -> np.ndarray:
    """The angle of (x, y) in [-pi, pi], as numpy's for finite arguments (signed zeros aside)."""
    y, x = np.broadcast_arrays(_f64(y), _f64(x))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = arctan(np.where(x != 0, y / np.where(x != 0, x, 1.0), 0.0))
    t = np.where(x < 0, np.where(y >= 0, t + math.pi, t - math.pi), t)
    axis = np.where(y > 0, math.pi / 2, np.where(y < 0, -math.pi / 2, 0.0))
    return np.where(x == 0, axis, t)


def wrap_angle(phi) -> np.ndarray:
    """phi wrapped to [-pi, pi] (what ``np.angle(np.exp(1j * phi))`` computes)."""
    phi = _f64(phi)
    return phi - (2 * math.pi) * np.rint(phi / (2 * math.pi))


def exp_float32(x) -> np.ndarray:
    """numpy's float32 ``exp``, kept where a twin has always used it: unlike float64 ``exp``, its AVX-512
    and AVX2 kernels gave identical bits (numpy 2.4, every float32 tried), and the float64 route here
    rounds differently to float32 (the EchoNet twin would change bytes for no gain)."""
    return np.exp(np.asarray(x, dtype=np.float32))


def dot(a, b) -> float:
    """Dot product of two short vectors, summed exactly (``math.fsum``): ``np.dot`` and
    ``np.linalg.norm`` call the BLAS, whose kernels (and so their summation order) OpenBLAS picks by
    processor model."""
    return math.fsum(float(x) * float(y) for x, y in zip(np.ravel(a), np.ravel(b), strict=True))


def norm(v) -> float:
    """Euclidean length of a short vector (see :func:`dot`)."""
    return math.sqrt(dot(v, v))
