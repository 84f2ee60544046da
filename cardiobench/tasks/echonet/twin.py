"""Apical-four-chamber echocardiography phantom.

The left-ventricular (LV) cavity is an axially symmetric bullet shape in the image plane, its apex
fixed near the transducer and its base (the mitral annulus) moving towards the apex in systole.
Everything drawn (sector mask, speckle, myocardium, right ventricle, atria, pericardium, gain,
orientation) comes from one parameter set, and the labels are *measured* from the same implicit
geometry the pixels are rendered from: end-diastolic and end-systolic frames are traced with a long
axis and 20 disk chords, volumes follow by the method of disks, and EF from those volumes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ...data.twins import portable_math as pmath

SIZE = 112
FPS = 50.0
N_DISKS = 20
PIXEL_CM = 0.15  # 112 px cover ~17 cm of depth: a typical adult apical-view depth setting
SYSTOLE = 0.35  # fraction of the cycle from end-diastole to end-systole
FILLING_END = 0.75  # rapid filling done by this phase; diastasis until the next end-diastole


@dataclass(frozen=True)
class EchoPhantom:
    """Parameters of one phantom video (all lengths in pixels, angles in radians)."""

    n_frames: int
    period: float  # frames per cardiac cycle
    phase0: float  # cycle phase of frame 0, in [0, 1)
    apex: tuple[float, float]  # (x, y) of the LV apex
    axis_angle: float  # angle of the apex->base axis from the image's downward vertical
    length_ed: float
    halfwidth_ed: float
    length_short: float  # fractional long-axis shortening at peak systole
    width_short: float  # fractional half-width shortening at peak systole
    wall: float  # end-diastolic wall thickness
    gain: float
    speckle_seed: int

    def contraction(self, t: np.ndarray) -> np.ndarray:
        """Contraction state per frame: 0 at end-diastole, 1 at end-systole."""
        phase = np.mod(np.asarray(t, dtype=np.float64) / self.period + self.phase0, 1.0)
        s = np.zeros_like(phase)
        sys = phase < SYSTOLE
        s[sys] = 0.5 * (1 - np.cos(np.pi * phase[sys] / SYSTOLE))
        fill = (phase >= SYSTOLE) & (phase < FILLING_END)
        s[fill] = 0.5 * (1 + np.cos(np.pi * (phase[fill] - SYSTOLE) / (FILLING_END - SYSTOLE)))
        return s

    def geometry(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LV long-axis length and maximal half-width per frame."""
        s = self.contraction(t)
        return self.length_ed * (1 - self.length_short * s), self.halfwidth_ed * (1 - self.width_short * s)

    @property
    def axis(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors along the long axis (apex->base) and across it."""
        e = np.array([np.sin(self.axis_angle), np.cos(self.axis_angle)], dtype=np.float32)
        n = np.array([np.cos(self.axis_angle), -np.sin(self.axis_angle)], dtype=np.float32)
        return e, n

    def traced_frames(self) -> tuple[int, int]:
        """(end-diastolic, end-systolic) frame of the first complete beat inside the video."""
        t = np.arange(self.n_frames)
        phase = np.mod(t / self.period + self.phase0, 1.0)
        # End-diastole: the last frame before contraction starts (phase wraps past 0).
        starts = np.nonzero(np.diff(phase) < 0)[0] + 1
        for ed in starts:
            es = int(round(ed + (SYSTOLE - phase[ed]) * self.period))
            if es < self.n_frames:
                return int(ed), es
        raise ValueError("video shorter than one systole")


def profile(u: np.ndarray) -> np.ndarray:
    """Normalised LV half-width along the long axis (u=0 apex, u=1 base); max 1 near u=0.76."""
    u = np.maximum(u, 0.0)
    return np.sqrt(u) * (1 - 0.35 * np.square(u)) * (1 / 0.6953)


def sample(rng: np.random.Generator) -> EchoPhantom:
    """Draw one phantom; EF spread ~10-85 %, about one in eight below 40 %."""
    if rng.random() < 0.15:
        ef_target = rng.uniform(10, 42)
    else:
        ef_target = float(np.clip(rng.normal(60, 8), 38, 85))
    k = 1 - ef_target / 100  # ESV/EDV ~ (1-fw)^2 (1-fl); split the shortening ~1:2 length:width
    hr = rng.uniform(55, 110)
    period = FPS * 60 / hr
    beats = rng.integers(2, 5)
    n_frames = int(max(72, round(beats * period + rng.uniform(0, period / 2))))
    return EchoPhantom(
        n_frames=n_frames,
        period=period,
        phase0=rng.uniform(0, 1),
        apex=(62 + rng.normal(0, 3), 16 + rng.normal(0, 2)),
        axis_angle=np.deg2rad(12 + rng.normal(0, 6)),
        length_ed=rng.uniform(56, 70),
        halfwidth_ed=rng.uniform(15, 20),
        length_short=1 - math.pow(k, 0.2),
        width_short=1 - math.pow(k, 0.4),
        wall=rng.uniform(5, 7.5),
        gain=rng.uniform(0.8, 1.2),
        speckle_seed=int(rng.integers(0, 2**31 - 1)),
    )


def _soft(d: np.ndarray, edge: float = 1.0) -> np.ndarray:
    """Anti-aliased membership from a signed distance (negative inside): a linear ramp ``edge`` px wide."""
    return np.clip(0.5 - d / edge, 0.0, 1.0)


def _ellipse_sd(x, y, cx, cy, rx, ry):
    """Approximate signed distance to an axis-aligned ellipse (exact on the axes)."""
    r = np.sqrt(np.square((x - cx) / rx) + np.square((y - cy) / ry))
    return (r - 1) * np.minimum(rx, ry)


def lv_signed_distance(ph: EchoPhantom, x: np.ndarray, y: np.ndarray, length, halfwidth) -> np.ndarray:
    """Approximate signed distance (px) to the LV cavity boundary; ``length``/``halfwidth`` broadcast."""
    e, n = ph.axis
    dx, dy = x - float(ph.apex[0]), y - float(ph.apex[1])
    a = dx * float(e[0]) + dy * float(e[1])  # along the axis from the apex
    b = dx * float(n[0]) + dy * float(n[1])  # across it
    u = a / length
    d_side = np.abs(b) - halfwidth * profile(u)
    d_base = a - length  # flat mitral plane
    d_apex = np.where(u < 0, np.sqrt(np.square(a) + np.square(b)), -np.inf).astype(a.dtype)
    return np.maximum(np.maximum(d_side, d_base), d_apex)


def render(ph: EchoPhantom) -> np.ndarray:
    """Render the video: uint8 (T, 112, 112)."""
    t = np.arange(ph.n_frames)
    length, halfwidth = ph.geometry(t)
    s = ph.contraction(t)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    x, y = xx[None], yy[None]
    L = length.astype(np.float32)[:, None, None]
    W = halfwidth.astype(np.float32)[:, None, None]
    S = s.astype(np.float32)[:, None, None]
    e, n = ph.axis

    d_lv = lv_signed_distance(ph, x, y, L, W)
    wall = ph.wall * (1 + 0.45 * S)  # myocardium thickens in systole
    cavity = _soft(d_lv)
    myo = _soft(d_lv - wall) - cavity

    # Right ventricle beside the septum (image left), contracting in phase with the LV.
    rv_c = np.array(ph.apex, dtype=np.float32) + 0.55 * L[..., 0, 0][:, None] * e - (W[..., 0, 0][:, None] + wall[..., 0, 0][:, None] + 9) * n
    rv_d = _ellipse_sd(x, y, rv_c[:, 0, None, None], rv_c[:, 1, None, None], 9 * (1 - 0.2 * S), 24 * (1 - 0.1 * S))
    rv = _soft(rv_d) * (1 - _soft(d_lv - wall))
    rv_wall = (_soft(rv_d - 3) - _soft(rv_d)) * (1 - _soft(d_lv - wall))
    # Atria below the annulus, filling while the ventricles empty.
    base = np.array(ph.apex, dtype=np.float32) + L[..., 0, 0][:, None] * e
    la_c = base + (wall[..., 0, 0][:, None] + 13) * e
    ra_c = la_c - 26 * n
    la_d = _ellipse_sd(x, y, la_c[:, 0, None, None], la_c[:, 1, None, None], 13 * (1 + 0.12 * S), 11 * (1 + 0.12 * S))
    ra_d = _ellipse_sd(x, y, ra_c[:, 0, None, None], ra_c[:, 1, None, None], 11 * (1 + 0.1 * S), 10 * (1 + 0.1 * S))
    atria = np.maximum(_soft(la_d), _soft(ra_d))
    atria_wall = np.maximum(_soft(la_d - 3) - _soft(la_d), _soft(ra_d - 3) - _soft(ra_d))
    # Pericardium: a bright shell around the whole heart.
    hc = np.array(ph.apex, dtype=np.float32) + 0.75 * ph.length_ed * e - 10 * n
    heart_d = _ellipse_sd(xx, yy, hc[0], hc[1], 48, 60)
    peri = _soft(np.abs(heart_d + 2) - 2.5, 1.0)[None]

    tissue = 0.22 + 0.55 * np.clip(myo + rv_wall + atria_wall, 0, 1) + 0.35 * peri
    blood = np.clip(cavity + rv + atria * (1 - np.clip(myo, 0, 1)), 0, 1)
    img = tissue * (1 - blood) + 0.03 * blood

    # Speckle: spatially correlated multiplicative Rayleigh noise, AR(1) in time.
    rng = np.random.default_rng(ph.speckle_seed)
    noise = np.empty_like(img)
    innov = rng.standard_normal((ph.n_frames + 1, 2, SIZE, SIZE), dtype=np.float32)
    prev = innov[0]
    for i in range(ph.n_frames):
        prev = 0.8 * prev + 0.6 * innov[i + 1]
        g0, g1 = (cv2.GaussianBlur(p, (0, 0), 0.8) for p in prev)
        noise[i] = np.sqrt(g0 * g0 + g1 * g1)
    noise /= noise.mean()

    depth = np.hypot(xx - SIZE / 2, yy)
    attenuation = pmath.exp_float32(-depth / 220.0)[None]
    img = img * noise * attenuation * ph.gain

    theta = pmath.arctan2(xx - SIZE / 2, yy + 1e-6).astype(xx.dtype)
    sector = (np.abs(theta) < np.deg2rad(38)) & (depth > 4) & (depth < SIZE - 3)
    img = np.where(sector[None], img, 0.0)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def trace(ph: EchoPhantom, frame: int, step: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Trace one frame like an echocardiographer: long axis and 20 disk chords across the cavity.

    Returns ``(axis, chords)``: axis is (x1, y1, x2, y2) from the mitral-annulus midpoint to the
    apex; chords is (20, 4), each chord's end points found by marching outwards from the long axis
    across the rendered cavity's boundary (the 0.5 level of its membership) in ``step``-px steps.
    """
    length, halfwidth = (float(v[0]) for v in ph.geometry(np.array([frame])))
    e, n = ph.axis
    apex = np.asarray(ph.apex)
    base = apex + length * e
    chords = np.empty((N_DISKS, 4))
    offsets = np.arange(0, 2 * ph.halfwidth_ed + 10, step)
    for i in range(N_DISKS):
        c = apex + (i + 0.5) / N_DISKS * length * e
        ends = []
        for sign in (1.0, -1.0):
            pts = c[None] + sign * offsets[:, None] * n[None]
            d = lv_signed_distance(ph, pts[:, 0], pts[:, 1], length, halfwidth)
            k = int(np.argmax(d > 0)) if np.any(d > 0) else len(offsets) - 1
            ends.append(pts[max(k - 1, 0)])
        chords[i] = [*ends[0], *ends[1]]
    return np.array([*base, *apex]), chords


def disk_volume(axis: np.ndarray, chords: np.ndarray, pixel_cm: float = PIXEL_CM) -> float:
    """Single-plane method of disks in mL: sum of pi (D/2)^2 * L/N over the chords."""
    length = np.hypot(axis[2] - axis[0], axis[3] - axis[1]) * pixel_cm
    diam = np.hypot(chords[:, 2] - chords[:, 0], chords[:, 3] - chords[:, 1]) * pixel_cm
    return float(np.sum(np.pi * (diam / 2) ** 2) * length / len(chords))
