"""Short-axis cine MR phantom of the ACDC kind (balanced SSFP: bright blood, dark myocardium).

One phantom is one patient: a stack of ``nz`` short-axis slices from the LV base towards the apex,
``n_frames`` frames over one cardiac cycle (end-diastole at frame 1). Geometry, in millimetres:

* LV cavity: a truncated prolate "bullet" with its apex fixed; radius ``R`` at the base, length
  ``L`` apex to base, a profile exponent ``p`` (2 = ellipsoid), a few angular harmonics so it is
  not a perfect circle. Systole shortens it radially (``fs``) and longitudinally (``fl``, the base
  descends towards the apex). Papillary muscles (dark) sit inside the cavity and, as in the ACDC
  annotation protocol, belong to the LV cavity label.
* Myocardium: the epicardium is the endocardium plus a wall thickness that may vary with the angle
  from the septum (HCM: thicker septum) and thins into the apical cap. In systole each angular
  sector keeps its myocardial area (``r_epi^2 - r_endo^2`` per radian), growing a little as the base
  descends through the slices, so the wall thickens where it moves inward.
* MINF: a sector of the wall (an infarct) with motion factor 0: it neither moves inward nor
  thickens, and is thinner at end-diastole; the remote wall is hypokinetic.
* RV: a crescent on the septal side, the part of an ellipse outside the LV epicardium, shorter than
  the LV (it ends before the apex), with a thin free wall that is not labelled (as in ACDC).
* Surroundings: chest wall (subcutaneous fat, muscle), lungs, mediastinum with epicardial fat,
  descending aorta, spine, and the liver rising into the apical slices, each with its own texture.

Labels (0 background, 1 RV cavity, 2 myocardium, 3 LV cavity) are the same geometry sampled at
pixel centres for the ED and ES frames; the image is that geometry with 1-pixel anti-aliased edges,
multiplied by a smooth coil-sensitivity field, plus Rician noise (magnitude of complex Gaussian).

The five ACDC groups set the parameters (Bernard et al., IEEE TMI 2018, section II):
NOR normal; DCM dilated LV, EF < 40 %, thin wall; HCM wall > 15 mm, high EF; MINF akinetic sector and
EF < 40 %; RV dilated RV with low RV EF.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ...data.twins import portable_math as pmath

GROUPS = ("DCM", "HCM", "MINF", "NOR", "RV")
LABELS = {0: "background", 1: "RV cavity", 2: "myocardium", 3: "LV cavity"}
ES_FILL = 0.32  # fraction of the cycle that rapid filling takes after end-systole


@dataclass(frozen=True)
class AcdcPhantom:
    """Parameters of one patient (lengths in mm, angles in radians)."""

    group: str
    height: float
    weight: float
    n_frames: int
    es_frame: int  # 1-based; end-diastole is frame 1
    nz: int
    dz: float  # slice spacing
    pixel: float  # in-plane spacing
    nx: int
    ny: int
    # LV
    center: tuple[float, float]  # LV axis at the basal slice, relative to the image centre
    tilt: tuple[float, float]  # in-plane drift of the LV axis per mm towards the apex
    theta_sep: float  # direction of the septum (towards the RV)
    length: float  # endocardial apex-to-base length at ED
    radius: float  # endocardial basal radius at ED
    p: float  # profile exponent
    harmonics: tuple[tuple[int, float, float], ...]  # (order, relative amplitude, phase)
    wall_sep: float
    wall_lat: float
    wall_apex: float
    fs: float  # radial shortening of the endocardium at ES
    fl: float  # longitudinal shortening at ES
    infarct: tuple[float, float] | None  # (angle from septum, half width) of the akinetic sector
    d0: float  # distance of the basal slice from the endocardial apex
    # RV
    rv_depth: float  # crescent depth beyond the septum at the base, ED
    rv_span: float  # tangential semi-axis relative to the LV epicardial radius
    rv_apex: float  # RV apex position as a fraction of L from the LV apex
    rv_short: float  # RV depth shortening at ES
    rv_basal_absent: bool  # the basal slice is above the tricuspid plane: no RV there
    # papillary muscles
    pap_radius: float
    # surroundings and imaging
    body: tuple[float, float, float, float]  # centre x, y, semi-axes a, b of the chest (mm)
    fat: float  # subcutaneous fat thickness
    epi_fat: float  # epicardial fat thickness (max)
    blood: float  # blood intensity (image scale)
    myo: float  # myocardium relative to blood
    noise: float  # noise sigma relative to blood
    coil: tuple[float, ...]  # coil-field coefficients
    texture_seed: int

    # -------------------------------------------------------------------- timing

    def contraction(self, t: np.ndarray) -> np.ndarray:
        """0 at end-diastole (frame index 0), 1 at end-systole (index es_frame - 1)."""
        t = np.asarray(t, dtype=np.float64)
        es = self.es_frame - 1
        fill = ES_FILL * self.n_frames
        s = np.zeros_like(t)
        sys = t <= es
        s[sys] = 0.5 * (1 - np.cos(np.pi * t[sys] / es))
        dia = (t > es) & (t < es + fill)
        s[dia] = 0.5 * (1 + np.cos(np.pi * (t[dia] - es) / fill))
        late = t >= es + fill  # diastasis then a small atrial kick before the next ED
        s[late] = 0.06 * np.sin(np.pi * (t[late] - es - fill) / max(self.n_frames - es - fill, 1)) ** 2
        return s

    # -------------------------------------------------------------------- geometry

    def slice_distance(self, k: int) -> float:
        """Distance of slice ``k`` (0 = base) from the endocardial apex, towards the base."""
        return self.d0 - k * self.dz

    def motion(self, phi: np.ndarray) -> np.ndarray:
        """Motion factor per angle from the septum: 1 normal, 0 inside the akinetic sector."""
        if self.infarct is None:
            return np.ones_like(phi)
        c, w = self.infarct
        dphi = np.abs(pmath.wrap_angle(phi - c))
        return np.clip((dphi - w) / 0.35 + 0.5, 0.0, 1.0)

    def shape(self, phi: np.ndarray) -> np.ndarray:
        out = np.ones_like(phi)
        for k, a, ph in self.harmonics:
            out = out + a * np.cos(k * phi + ph)
        return out

    def wall(self, phi: np.ndarray) -> np.ndarray:
        w = self.wall_lat + (self.wall_sep - self.wall_lat) * 0.5 * (1 + np.cos(phi))
        return w * (1 - 0.35 * (1 - self.motion(phi)))

    def walls(self, phi: np.ndarray, d: float, s: float) -> tuple[np.ndarray, np.ndarray]:
        """(endocardial, epicardial) radius per angle ``phi`` at slice distance ``d``, contraction ``s``."""
        m = self.motion(phi)
        shape = self.shape(phi)
        endo_ed = self.radius * shape * _profile(d / self.length, self.p)
        la = self.length + self.wall_apex
        epi_ed = (self.radius * shape + self.wall(phi)) * _profile((d + self.wall_apex) / la, self.p)
        if s == 0:
            return endo_ed, epi_ed
        ls = self.length * (1 - self.fl * m * s)
        endo = self.radius * (1 - self.fs * m * s) * shape * _profile(d / ls, self.p)
        area = (1 + (0.8 * self.fl + 0.04) * m * s) * (epi_ed**2 - endo_ed**2)
        return endo, np.sqrt(endo**2 + area)

    def lv_center(self, k: int, s: float) -> tuple[float, float]:
        depth = self.d0 - self.slice_distance(k)
        return (self.center[0] + self.tilt[0] * depth - 1.5 * s * np.cos(self.theta_sep),
                self.center[1] + self.tilt[1] * depth - 1.5 * s * np.sin(self.theta_sep))

    def rv_ellipse(self, k: int, s: float) -> tuple[float, float, float] | None:
        """RV ellipse in the LV frame (u towards the septum): (centre u, semi-axis u, semi-axis v).

        Its far edge (the free wall) lies ``depth`` beyond the septal epicardium; its near edge is
        hidden behind the LV, so the part outside the LV epicardium is a crescent on the septum."""
        if k == 0 and self.rv_basal_absent:
            return None
        d = self.slice_distance(k)
        start = self.rv_apex * self.length
        prof = float(_profile(np.array((d - start) / (self.length - start)), 2.2))
        depth = self.rv_depth * prof * (1 - self.rv_short * s)
        if prof <= 0.05 or depth < 2:
            return None
        r_sep = float(self.walls(np.array([0.0]), max(d, 1.0), s)[1][0])
        r_mean = self.radius + 0.5 * (self.wall_sep + self.wall_lat)
        far = r_sep + depth
        near = -0.35 * r_mean
        span = (self.rv_span * r_mean + 0.25 * self.rv_depth) * (0.55 + 0.45 * prof) * (1 - 0.3 * self.rv_short * s)
        return 0.5 * (far + near), 0.5 * (far - near), span

    def areas(self, s: float, n_angles: int = 360) -> np.ndarray:
        """Per slice (nz, 3): LV cavity, myocardium and RV cavity areas in mm^2 at contraction ``s``,
        integrated in polar coordinates about the LV centre (what the label maps measure, minus
        pixelisation)."""
        phi = np.linspace(-np.pi, np.pi, n_angles, endpoint=False)
        dphi = 2 * np.pi / n_angles
        out = np.zeros((self.nz, 3))
        d = np.array([self.slice_distance(k) for k in range(self.nz)])[:, None]
        endo, epi = self.walls(phi[None, :], d, s)  # (nz, n_angles)
        out[:, 0] = 0.5 * np.sum(endo**2, axis=1) * dphi
        out[:, 1] = 0.5 * np.sum(epi**2 - endo**2, axis=1) * dphi
        c, sn = np.cos(phi), np.sin(phi)
        for k in range(self.nz):
            ell = self.rv_ellipse(k, s)
            if ell is not None:
                cu, a, b = ell
                qa = c * c / a**2 + sn * sn / b**2
                qb = -2 * cu * c / a**2
                qc = cu * cu / a**2 - 1
                exit_ = (-qb + np.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)
                out[k, 2] = 0.5 * np.sum(np.clip(exit_**2 - epi[k] ** 2, 0, None)) * dphi
        return out

    def volumes(self) -> dict[str, float]:
        """LV/RV end-diastolic and end-systolic volumes (mL), EFs (%) and LV mass (g) of the geometry."""
        v = {ph: self.areas(s).sum(axis=0) * self.dz / 1000 for ph, s in (("ED", 0.0), ("ES", 1.0))}
        out = dict(LV_EDV=v["ED"][0], LV_ESV=v["ES"][0], RV_EDV=v["ED"][2], RV_ESV=v["ES"][2],
                   MYO_mass=1.05 * v["ED"][1])
        out["LV_EF"] = 100 * (1 - out["LV_ESV"] / out["LV_EDV"])
        out["RV_EF"] = 100 * (1 - out["RV_ESV"] / out["RV_EDV"]) if out["RV_EDV"] > 0 else float("nan")
        return out


def _profile(h: np.ndarray, p: float) -> np.ndarray:
    """Relative radius at fractional height ``h`` from the apex (0) to the base (1); 1 above the base."""
    h = np.clip(h, 0.0, 1.0)
    return pmath.power(np.clip(1 - pmath.power(1 - h, p), 0.0, 1.0), 1 / p)


# ------------------------------------------------------------------------------ sampling


def sample(rng: np.random.Generator, group: str) -> AcdcPhantom:
    """Draw one patient of ``group`` (one of :data:`GROUPS`)."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}")
    u = rng.uniform
    male = rng.random() < 0.6
    height = float(np.round(rng.normal(176 if male else 164, 7), 0))
    weight = float(np.round(np.clip(rng.normal(82 if male else 68, 12), 45, 130), 0))
    size = height / 170  # body-size scaling of the normal heart

    # Normal values; the group overrides below.
    radius, length = u(25, 28) * size, u(85, 98) * size
    wall_lat = u(7, 9.5)
    wall_sep = wall_lat + u(0, 1.5)
    ef = u(0.56, 0.70)
    fl = u(0.11, 0.15)
    infarct = None
    rv_depth, rv_span, rv_ef = u(22, 28) * size, u(1.1, 1.3), u(0.50, 0.64)
    if group == "DCM":
        radius, length = u(32, 38) * size, u(98, 110) * size
        wall_lat = u(5.0, 7.0)
        wall_sep = wall_lat + u(-0.5, 1.0)
        ef, fl = u(0.12, 0.34), u(0.04, 0.07)
        rv_ef = u(0.38, 0.52)
    elif group == "HCM":
        radius, length = u(20, 23.5) * size, u(78, 90) * size
        wall_lat = u(12, 15.5)
        wall_sep = u(17, 24)
        ef, fl = u(0.68, 0.80), u(0.08, 0.12)
    elif group == "MINF":
        radius, length = u(27, 31) * size, u(88, 100) * size
        wall_lat = u(6.5, 9)
        wall_sep = wall_lat + u(0, 1)
        ef, fl = u(0.22, 0.36), u(0.05, 0.09)
        infarct = (float(u(0, 2 * np.pi)), float(u(0.55, 0.95)))  # anywhere: LAD, LCx or RCA territory
    elif group == "RV":
        rv_depth, rv_span, rv_ef = u(38, 48) * size, u(1.3, 1.5), u(0.18, 0.36)
        ef = u(0.50, 0.64)

    n_frames = int(rng.integers(20, 31))
    es_frame = 1 + int(round(u(0.35, 0.45) * n_frames))
    pixel = float(np.round(u(1.3, 1.8), 4))
    fov = u(235, 290)
    nx = int(np.clip(round(fov / pixel / 2) * 2, 128, 176))
    ny = int(np.clip(round(fov * u(0.8, 1.0) / pixel / 2) * 2, 128, 176))
    nz = int(rng.integers(6, 11))
    # The basal slice sits below the ES base so that it crosses the LV at both phases.
    lowest_base = length * (1 - fl) - u(3, 7)
    wall_apex = 0.7 * wall_lat
    dz = float(np.clip(np.round((lowest_base + wall_apex * u(0.2, 1.0)) / (nz - 0.5) * 2) / 2, 5.0, 10.0))
    theta_sep = float(np.pi + rng.normal(0, 0.25) - 0.25)
    harmonics = tuple((k, float(u(0.0, 0.05 / math.pow(k, 0.5))), float(u(0, 2 * np.pi))) for k in (2, 3, 4))
    center = (float(rng.normal(8, 6)), float(rng.normal(-5, 6)))
    tilt = (float(rng.normal(0.12, 0.08)), float(rng.normal(0.05, 0.08)))
    body_a = u(150, 180) * size
    body = (float(center[0] - u(25, 40)), float(center[1] + u(25, 45)), float(body_a), float(body_a * u(0.62, 0.75)))
    ph = AcdcPhantom(
        group=group, height=height, weight=weight, n_frames=n_frames, es_frame=es_frame, nz=nz, dz=dz,
        pixel=pixel, nx=nx, ny=ny, center=center, tilt=tilt, theta_sep=theta_sep, length=float(length),
        radius=float(radius), p=float(u(2.2, 3.0)), harmonics=harmonics, wall_sep=float(wall_sep),
        wall_lat=float(wall_lat), wall_apex=float(wall_apex), fl=float(fl), infarct=infarct,
        d0=float(lowest_base), rv_depth=float(rv_depth), rv_span=float(rv_span), rv_apex=float(u(0.18, 0.32)),
        rv_basal_absent=bool(rng.random() < 0.25), pap_radius=float(u(3.0, 4.5)),
        body=body, fat=float(u(6, 22)), epi_fat=float(u(2, 6)), blood=float(u(180, 420)),
        myo=float(u(0.2, 0.3)), noise=float(u(0.025, 0.06)),
        coil=tuple(float(c) for c in rng.normal(0, 1, 6)), texture_seed=int(rng.integers(0, 2**31 - 1)),
        fs=0.0, rv_short=0.0,
    )
    # The radial shortening that gives the drawn EF on this geometry (slice coverage, taper, an
    # akinetic sector), then the RV free-wall shortening for the drawn RV EF (the septum moves too).
    fs = _solve(lambda f: replace(ph, fs=f).volumes()["LV_EF"], 100 * ef, 0.0, 0.75)
    ph = replace(ph, fs=fs)
    return replace(ph, rv_short=_solve(lambda f: replace(ph, rv_short=f).volumes()["RV_EF"], 100 * rv_ef, 0.0, 0.9))


def _solve(f, target: float, lo: float, hi: float, iters: int = 16) -> float:
    """Bisection for an increasing ``f``: the x in [lo, hi] with f(x) = target (a bound if out of reach)."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return float(0.5 * (lo + hi))


# ------------------------------------------------------------------------------ rasterising


def _soft(d: np.ndarray, edge: float) -> np.ndarray:
    """Anti-aliased membership from a signed distance (negative inside), a ramp ``edge`` wide."""
    return np.clip(0.5 - d / edge, 0.0, 1.0)


def _grid(ph: AcdcPhantom) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (mm) relative to the image centre, shape (nx, ny)."""
    x = (np.arange(ph.nx, dtype=np.float32) - (ph.nx - 1) / 2) * ph.pixel
    y = (np.arange(ph.ny, dtype=np.float32) - (ph.ny - 1) / 2) * ph.pixel
    return np.meshgrid(x, y, indexing="ij")


@dataclass
class _Slice:
    """Signed distances (mm, negative inside) of one slice at one instant."""

    endo: np.ndarray  # LV cavity (papillary muscles included)
    epi: np.ndarray  # LV epicardium
    rv: np.ndarray | None  # RV cavity ellipse (before removing the LV)
    pap: np.ndarray | None  # papillary muscles


def _slice(ph: AcdcPhantom, k: int, s: float, x: np.ndarray, y: np.ndarray) -> _Slice:
    cx, cy = ph.lv_center(k, s)
    dx, dy = x - np.float32(cx), y - np.float32(cy)
    rho = np.hypot(dx, dy)
    phi = pmath.arctan2(dy, dx).astype(np.float32) - np.float32(ph.theta_sep)
    d = ph.slice_distance(k)
    # Radii depend only on the angle: evaluate them on 720 angles and interpolate.
    ang = np.linspace(-np.pi, np.pi, 721)
    endo_r, epi_r = ph.walls(ang, d, s)
    phw = np.mod(phi + np.pi, 2 * np.pi) - np.pi
    endo = rho - np.interp(phw, ang, endo_r).astype(np.float32)
    epi = rho - np.interp(phw, ang, epi_r).astype(np.float32)
    ct, st = np.cos(ph.theta_sep), np.sin(ph.theta_sep)
    u = dx * np.float32(ct) + dy * np.float32(st)
    v = -dx * np.float32(st) + dy * np.float32(ct)
    rv = None
    ell = ph.rv_ellipse(k, s)
    if ell is not None:
        cu, a, b = ell
        q = np.sqrt(np.square((u - np.float32(cu)) / np.float32(a)) + np.square(v / np.float32(b)))
        rv = (q - 1) * np.float32(min(a, b))
    pap = None
    h = d / (ph.length * (1 - ph.fl * s))
    r_mid = float(np.interp(np.pi, ang, endo_r))
    if 0.25 < h < 0.9 and r_mid > 3 * ph.pap_radius:
        size = ph.pap_radius * math.pow(math.sin(math.pi * (h - 0.25) / 0.65), 0.5) * (1 + 0.25 * s)
        for a in (np.pi - 0.85, np.pi + 0.85):
            r_here = float(np.interp(np.mod(a + np.pi, 2 * np.pi) - np.pi, ang, endo_r))
            pr = r_here - 1.1 * size
            px, py = pr * np.cos(a + ph.theta_sep), pr * np.sin(a + ph.theta_sep)
            dd = np.hypot(dx - np.float32(px), dy - np.float32(py)) - np.float32(size)
            pap = dd if pap is None else np.minimum(pap, dd)
    return _Slice(endo=endo, epi=epi, rv=rv, pap=pap)


def label_slice(sl: _Slice) -> np.ndarray:
    """0 background, 1 RV cavity, 2 myocardium, 3 LV cavity, at pixel centres."""
    lab = np.zeros(sl.endo.shape, np.uint8)
    if sl.rv is not None:
        lab[(sl.rv < 0) & (sl.epi >= 0)] = 1
    lab[sl.epi < 0] = 2
    lab[sl.endo < 0] = 3
    return lab


def labels(ph: AcdcPhantom, frame: int) -> np.ndarray:
    """The label volume (nx, ny, nz) uint8 of 1-based ``frame``."""
    x, y = _grid(ph)
    s = float(ph.contraction(np.array([frame - 1]))[0])
    return np.stack([label_slice(_slice(ph, k, s, x, y)) for k in range(ph.nz)], axis=-1)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian random field with correlation length ``sigma`` px."""
    f = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return f / (f.std() + 1e-6)


def _background(ph: AcdcPhantom, k: int, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Static anatomy around the heart, relative to blood = 1."""
    e = ph.pixel
    bx, by, ba, bb = ph.body
    q = np.sqrt(np.square((x - bx) / ba) + np.square((y - by) / bb))
    body_sd = (q - 1) * min(ba, bb)
    body = _soft(body_sd, e)
    fat = body - _soft(body_sd + ph.fat * (1 + 0.3 * np.cos(pmath.arctan2(y - by, x - bx).astype(np.float32) * 2)), e)
    muscle = _soft(body_sd + ph.fat, e) - _soft(body_sd + ph.fat + 12, e)
    inner = _soft(body_sd + ph.fat + 12, e)
    img = 0.85 * fat + 0.32 * muscle + 0.40 * inner
    tex = _smooth_noise(rng, x.shape, 2.0 / e)
    img = img * (1 + 0.07 * tex)

    cx, cy = ph.lv_center(k, 0)
    r_heart = ph.radius + ph.wall_lat + ph.rv_depth
    depth = ph.d0 - ph.slice_distance(k)
    # Lungs: left lung lateral to the LV, right lung beyond the RV; both posterior-ish, shrinking apically.
    lat = np.array([np.cos(ph.theta_sep + np.pi), np.sin(ph.theta_sep + np.pi)])
    for side, off, a, b in ((lat, r_heart + 30, 48, 70), (-lat, r_heart + 55, 55, 78)):
        lx, ly = cx + side[0] * off, cy + side[1] * off + 25
        shrink = max(0.35, 1 - depth / 160)
        ql = np.sqrt(np.square((x - lx) / (a * shrink + 5)) + np.square((y - ly) / (b * shrink + 5)))
        lung = _soft((ql - 1) * a * shrink, e) * inner
        img = img * (1 - lung) + (0.04 + 0.02 * np.clip(tex, 0, None)) * lung
    # Liver rises into the apical slices (patient right, inferior: the RV side, posterior).
    liver_frac = np.clip((depth - 0.45 * ph.length) / (0.5 * ph.length), 0, 1)
    if liver_frac > 0:
        lx, ly = cx - lat[0] * 45, cy - lat[1] * 45 + 75
        r = 35 + 60 * liver_frac
        liver = _soft(np.hypot(x - lx, (y - ly) * 1.3) - r, e) * inner
        img = img * (1 - liver) + 0.42 * (1 + 0.05 * tex) * liver
    # Spine (vertebral body, CSF) and the descending aorta beside it.
    sx, sy = bx + 5, by + bb - 42
    vert = _soft(np.hypot(x - sx, y - sy) - 17, e)
    img = img * (1 - vert) + 0.5 * vert
    csf = _soft(np.hypot(x - sx, y - sy - 27) - 7, e)
    img = img * (1 - csf) + 0.85 * csf
    ax, ay = sx + 28, sy - 18
    aorta = _soft(np.hypot(x - ax, y - ay) - 11, e)
    img = img * (1 - aorta) + 0.95 * aorta
    return img.astype(np.float32)


def _coil(ph: AcdcPhantom, k: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth multiplicative coil sensitivity, ~0.6-1.5 over the chest, brighter anteriorly."""
    c = ph.coil
    xs, ys = x / 150.0, y / 150.0
    z = k / max(ph.nz - 1, 1) - 0.5
    g = 0.25 * c[0] * xs + 0.25 * c[1] * ys + 0.1 * c[2] * xs * ys + 0.1 * c[3] * z - 0.35 * ys
    g = g - 0.15 * (xs ** 2 + ys ** 2) * (1 + 0.3 * c[4])
    return pmath.exp(g).astype(np.float32)


def _box(ph: AcdcPhantom, k: int) -> tuple[slice, slice]:
    """Pixel box of slice ``k`` outside which nothing of the heart (or its fat) is ever drawn."""
    ang = np.linspace(-np.pi, np.pi, 361)
    reach = float(np.max(ph.walls(ang, ph.slice_distance(k), 0.0)[1]))
    ell = ph.rv_ellipse(k, 0.0)
    if ell is not None:
        reach = max(reach, abs(ell[0]) + max(ell[1], ell[2]))
    reach = 1.1 * reach + 1.3 * ph.epi_fat + 4 + 2 * ph.pixel  # systolic epicardium of the apex, fat, edges
    cx, cy = ph.lv_center(k, 0.0)
    i0, i1 = ((cx - reach, cx + reach) / np.float64(ph.pixel) + (ph.nx - 1) / 2).round().astype(int)
    j0, j1 = ((cy - reach, cy + reach) / np.float64(ph.pixel) + (ph.ny - 1) / 2).round().astype(int)
    return slice(max(i0, 0), min(i1 + 1, ph.nx)), slice(max(j0, 0), min(j1 + 1, ph.ny))


def render(ph: AcdcPhantom) -> np.ndarray:
    """The cine stack as float32 (nx, ny, nz, n_frames) in scanner-like units (blood ~ ``ph.blood``)."""
    rng = np.random.default_rng(ph.texture_seed)
    x, y = _grid(ph)
    e = np.float32(ph.pixel)
    s_all = ph.contraction(np.arange(ph.n_frames))
    out = np.empty((ph.nx, ph.ny, ph.nz, ph.n_frames), np.float32)
    for k in range(ph.nz):
        bg = _background(ph, k, x, y, rng)
        coil = _coil(ph, k, x, y) * np.float32(ph.blood)
        out[:, :, k, :] = (bg * coil)[:, :, None]
        box = _box(ph, k)
        xb, yb, bgb, coilb = x[box], y[box], bg[box], coil[box]
        fat_t = np.float32(ph.epi_fat) * np.clip(0.3 + 0.8 * _smooth_noise(rng, x.shape, 6.0 / ph.pixel), 0, 1.3)[box]
        blood_tex = 1 + 0.03 * _smooth_noise(rng, x.shape, 1.5)[box]
        myo_tex = np.float32(ph.myo) * (1 + 0.12 * _smooth_noise(rng, x.shape, 1.0))[box]
        for t in range(ph.n_frames):
            s = float(s_all[t])
            sl = _slice(ph, k, s, xb, yb)
            heart_sd = sl.epi if sl.rv is None else np.minimum(sl.epi, sl.rv - 3.0)
            fat = _soft(heart_sd - fat_t, e) * (fat_t > 0.8)
            img = bgb * (1 - fat) + 0.8 * fat
            heart = _soft(heart_sd, e)
            img = img * (1 - heart) + myo_tex * heart
            blood = _soft(sl.endo, e)
            if sl.pap is not None:
                blood = blood * (1 - _soft(sl.pap, e))
            if sl.rv is not None:
                blood = np.maximum(blood, _soft(sl.rv, e) * (1 - _soft(sl.epi, e)))
            img = img * (1 - blood) + (0.97 + 0.03 * s) * blood_tex * blood
            out[box[0], box[1], k, t] = img * coilb
    # Rician noise: the magnitude of the complex signal plus complex Gaussian noise.
    sigma = np.float32(ph.noise * ph.blood)
    re = out + sigma * rng.standard_normal(out.shape, dtype=np.float32)
    im = sigma * rng.standard_normal(out.shape, dtype=np.float32)
    return np.sqrt(re * re + im * im)
