"""The patient: :class:`CTPhantom` (every parameter of one patient and its scan, its cardiac cycle and LV
geometry, its affine), the constants the package shares, and the voxel grid of the scan (the voxel
centres' coordinates, the output voxel order).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FOVS = ("cardiac", "chest")
ORIENTATIONS = ("RAS", "LPS")
N_PHASES = 8  # instants of the cycle averaged by the non-gated scan
AS_THRESHOLD = {"M": 2000.0, "F": 1300.0}  # Agatston units for severe aortic stenosis
CALCIUM_ABOVE_BLOOD = 150.0  # HU above the blood pool for the contrast-CT calcium threshold
# Each nodule counts for this fraction of its isolated prediction when a valve is designed: nodules
# merge where they overlap and the grid and noise shave their edges (calibrated on 200 renders:
# measured / designed score ~1 around the AS cut-offs).
CALCIUM_GAIN = 0.6
AIR = -1000.0
Vec = tuple[float, float, float]


@dataclass(frozen=True)
class CTPhantom:
    """All parameters of one patient and its scan (lengths in mm, patient frame, HU)."""

    fov: str
    sex: str
    size: float  # body-size factor (~1)
    # acquisition
    orientation: str
    spacing: Vec
    shape: tuple[int, int, int]
    fov_center: Vec  # patient-frame position of the volume centre
    origin: Vec  # world (RAS+) position of the patient-frame origin
    noise_hu: float
    psf_mm: float
    # tissue values
    blood_hu: float  # LV, LA, aorta, pulmonary veins (arterial contrast)
    rv_hu: float  # RA, RV, pulmonary arteries, caval veins
    myo_hu: float
    fat_hu: float
    muscle_hu: float
    lung_hu: float
    lung_gradient: float  # extra HU at the most posterior lung
    liver_hu: float
    # torso
    body: tuple[float, float, float]  # semi-axes (lateral, antero-posterior), centre y
    fat_mm: float
    muscle_mm: float
    cavity: tuple[float, float, float]  # thoracic cavity semi-axes and its centre's y
    lung_top: tuple[float, float, float, float]  # z of the apices, their |x|, y, dome radius
    domes: tuple[float, float, float, float, float]  # z right, z left, their |x|, y, radius
    mediastinum: tuple[float, float]  # centre x, half width
    spine: tuple[float, float, float, float, float, float]  # y, radius, disc period, phase, cancellous, cortex HU
    ribs: tuple[float, float, float, float]  # period, phase, anterior drop, half height
    # heart
    base: Vec  # centre of the LV base plane at end-diastole
    axis: Vec  # LV long axis, base -> apex (left, anterior, inferior)
    septal: Vec  # unit vector normal to the axis, towards the RV
    r_ed: float  # cavity short semi-axis at ED
    c_ed: float  # cavity long semi-axis at ED
    trunc: float  # base plane at trunc * c above the equator
    fr: float  # radial shortening at ES
    fl: float  # longitudinal shortening at ES (apex fixed)
    wall: float
    wall_apex: float
    epi_fat: float
    rv: tuple[Vec, Vec]  # centre, semi-axes along (axis, septal, axis x septal)
    ra: tuple[Vec, Vec]  # centre, world-aligned semi-axes
    la: tuple[Vec, Vec]
    cycle: tuple[float, float, float]  # end-systole, end of rapid filling, start phase (cycle fractions)
    # aorta and valve
    annulus: Vec
    root_axis: Vec
    annulus_r: float
    leaflet_h: float  # height of the coaptation centre above the annulus
    tubes: tuple[tuple[str, Vec, Vec, float, float], ...]  # (kind, a, b, r_a, r_b): vessels, airways
    lung_vessels: tuple[tuple[Vec, Vec, float, float], ...]
    calcium: tuple[tuple[float, float, float, float, float], ...]  # aortic valve (x, y, z, sigma, HU)
    coronary: tuple[tuple[float, float, float, float, float], ...]
    calcium_design: float  # the score the nodules were sized for (not the label: that is measured)

    # -------------------------------------------------------------------- timing

    def contraction(self, t: np.ndarray) -> np.ndarray:
        """Contraction 0 (end-diastole) .. 1 (end-systole) at cycle fractions ``t``."""
        t = np.mod(np.asarray(t, dtype=np.float64), 1.0)
        t_es, t_fill, _ = self.cycle
        t_a, s_d = 0.85, 0.16
        s = np.empty_like(t)
        sy = t < t_es
        s[sy] = 0.5 * (1 - np.cos(np.pi * t[sy] / t_es))
        fi = (t >= t_es) & (t < t_fill)
        s[fi] = s_d + (1 - s_d) * 0.5 * (1 + np.cos(np.pi * (t[fi] - t_es) / (t_fill - t_es)))
        di = (t >= t_fill) & (t < t_a)
        s[di] = s_d * (1 - 0.3 * (t[di] - t_fill) / (t_a - t_fill))
        at = t >= t_a
        s[at] = 0.7 * s_d * 0.5 * (1 + np.cos(np.pi * (t[at] - t_a) / (1 - t_a)))
        return s

    def phases(self) -> np.ndarray:
        """The contraction at the ``N_PHASES`` instants the non-gated scan averages."""
        return self.contraction((np.arange(N_PHASES) + self.cycle[2]) / N_PHASES)

    def valve_closed(self) -> float:
        """Fraction of the averaged instants with the aortic valve closed (outside ejection)."""
        t = np.mod((np.arange(N_PHASES) + self.cycle[2]) / N_PHASES, 1.0)
        return float(np.mean(t >= self.cycle[0]))

    # -------------------------------------------------------------------- LV geometry

    @property
    def apex(self) -> np.ndarray:
        """Endocardial apex (fixed over the cycle)."""
        return np.asarray(self.base) + np.asarray(self.axis) * (1 + self.trunc) * self.c_ed

    def lv(self, s: float | np.ndarray) -> dict[str, np.ndarray]:
        """Cavity and epicardium at contraction ``s``: R, c (cavity), a, C (epicardium semi-axes),
        hb (base plane height above the apex), all measured along the axis from the fixed apex."""
        s = np.asarray(s, dtype=np.float64)
        R = self.r_ed * (1 - self.fr * s)
        c = self.c_ed * (1 - self.fl * s)
        p = self.trunc * c
        vm = _tvol(self.r_ed + self.wall, self.c_ed + self.wall_apex, self.trunc * self.c_ed) - _tvol(
            self.r_ed, self.c_ed, self.trunc * self.c_ed)
        lo, hi = np.zeros_like(R), np.full_like(R, 4 * self.wall)
        for _ in range(40):  # wall thickness that keeps the myocardial volume
            w = 0.5 * (lo + hi)
            big = _tvol(R + w, c + w * self.wall_apex / self.wall, p) - _tvol(R, c, p) > vm
            hi, lo = np.where(big, w, hi), np.where(big, lo, w)
        w = 0.5 * (lo + hi)
        return dict(R=R, c=c, a=R + w, C=c + w * self.wall_apex / self.wall, hb=(1 + self.trunc) * c, w=w)

    def volumes(self) -> dict[str, float]:
        """Analytic EDV, ESV (mL), EF (%) and LV mass (g) of the geometry (the labels are measured)."""
        g = self.lv(np.array([0.0, 1.0]))
        v = _tvol(g["R"], g["c"], self.trunc * g["c"]) / 1000
        mass = 1.05 * (_tvol(g["a"][0], g["C"][0], self.trunc * g["c"][0]) / 1000 - v[0])
        return dict(edv_ml=float(v[0]), esv_ml=float(v[1]), lvef=float(100 * (1 - v[1] / v[0])), mass_g=float(mass))

    @property
    def lvef(self) -> float:
        return self.volumes()["lvef"]

    def lv_center(self) -> np.ndarray:
        return np.asarray(self.base) + np.asarray(self.axis) * 0.5 * (1 + self.trunc) * self.c_ed

    # -------------------------------------------------------------------- acquisition

    def affine(self) -> np.ndarray:
        """Voxel (i, j, k) -> world RAS+ mm, for this phantom's orientation."""
        x, y, z = _axes(self)
        sx, sy, sz = self.spacing
        o = np.asarray(self.origin)
        a = np.eye(4)
        if self.orientation == "RAS":
            a[:3, :3] = np.diag([sx, sy, sz])
            a[:3, 3] = o + (x[0], y[0], z[0])
        else:
            a[:3, :3] = np.diag([-sx, -sy, sz])
            a[:3, 3] = o + (x[-1], y[-1], z[0])
        return a


def _tvol(a, c, p):
    """Volume of an ellipsoid (semi-axes a, a, c) cut by a plane at distance p above its centre."""
    return np.pi * np.square(a) * ((p + c) - (p * p * p / np.square(c) + c) / 3)


def _axes(ph: CTPhantom) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient-frame coordinates (mm) of the voxel centres along i, j, k of the RAS-ordered array."""
    return tuple(((np.arange(n) - (n - 1) / 2) * s + c).astype(np.float32)
                 for n, s, c in zip(ph.shape, ph.spacing, ph.fov_center))


def _to_output(ph: CTPhantom, arr: np.ndarray) -> np.ndarray:
    """RAS-ordered array -> the phantom's voxel order."""
    return arr if ph.orientation == "RAS" else np.ascontiguousarray(arr[::-1, ::-1, :])
