"""Non-gated, contrast-enhanced chest CT phantom in Hounsfield units (LVEF and aortic stenosis).

One phantom is one patient lying supine, head first. Anatomy is laid out in a *patient frame* in
millimetres with the axes of RAS+ world space (x towards the patient's Right, y Anterior, z
Superior), its origin on the body's midline at the level of the aortic annulus; ``origin`` places
that frame in the scanner's world (a table position), and the affine maps voxels to world. The
heart therefore lies at x below the midline (the patient's left is -x in RAS+).

Anatomy (HU values in brackets are typical; each patient draws its own):

* Torso: air outside the body (-1000); a body ellipse of subcutaneous fat (-100) and muscle (45);
  the thoracic cavity inside the rib band holds the lungs (about -850, denser posteriorly, the
  gravity gradient), bounded above by the apical domes and below by the two diaphragm domes
  (the right one higher), under which lie the liver (contrast, about +110) and stomach/spleen.
  Lung vessels are branching tapered tubes from the hila (+150..+300 on axis, less by partial
  volume in the small ones), drawn only where lung is.
* Bone: vertebral bodies (cancellous +250..+380, cortical rim +600..+900) with discs every
  ~27 mm, spinal canal, posterior arch and spinous process; the sternum; ribs as oblique bands
  descending anteriorly, so that an axial slice cuts them into arcs (cortex bright, marrow dimmer;
  costal cartilage anteriorly); paraspinal muscle.
* Mediastinum: fat and soft tissue (-50) between the lungs; trachea and main bronchi (air in a
  soft-tissue wall), oesophagus; ascending aorta, arch and descending aorta, SVC, IVC,
  pulmonary trunk and arteries, four pulmonary veins.
* Heart: epicardial fat (-90) around every chamber; left atrium and the aorta at the arterial
  contrast level ``blood_hu`` (+250..+350, the contrast timing of this patient), right-heart
  chambers and veins at ``rv_hu``; the right ventricle is an ellipsoid wrapped on the septum with
  a 3.5 mm wall; the LV is below.
* Aortic root: annulus (radius 10-13 mm) at z = 0, sinus, sinotubular junction; three cusps
  (a cone meeting in the centre plus the three coaptation sheets of the closed valve) drawn with
  the fraction of the cycle the valve is closed. Aortic-valve calcium: Gaussian nodules of
  +350..+950 HU above the blood pool on the cusps (clustered, mostly near the hinges), static (a
  calcified stenotic valve barely opens). Coronary calcium on the LAD in a third of patients
  (outside the valve region, so it must not count).

Left ventricle and cardiac motion. The cavity is a truncated prolate ellipsoid (short semi-axis
``R``, long ``c``, cut by the mitral/aortic base plane ``f c`` above its equator) whose long axis
points from the base to the apex left, anterior and inferior. The apex is fixed; systole shrinks
the short axis by ``fr`` and the long axis by ``fl`` (the base descends), so ESV/EDV =
(1-fr)^2 (1-fl) exactly and ``fr`` is solved for the patient's EF. The epicardium is the same
construction with a wall ``w`` (``wa`` at the apex) whose thickness at each phase is solved so
that the myocardial volume (mass) stays constant: the wall thickens in systole. The cycle is
systole (cosine, ``t_es`` ~ 1/3 of the cycle), rapid filling, diastasis, atrial kick.

The scan is not ECG-gated: each voxel is the *time average* over ``N_PHASES`` equally spaced
instants of one cycle (a random start phase), so the LV blood-myocardium boundary is smeared over
its ED->ES excursion with more weight near diastole, as in a slow non-gated acquisition (real
scans also show slice-to-slice phase jumps; those are not modelled). The width of the smeared
band relative to the cavity (and the cavity size and wall thickness) carries the EF.

Labels are measured, not drawn:

* EDV/ESV: voxel counts of the ED and ES cavity (voxel centres inside the truncated ellipsoid
  at contraction 0 and 1) on the rendered grid times the voxel volume; LVEF = 100 (EDV-ESV)/EDV.
  The analytic volumes of the geometry (``CTPhantom.volumes``) agree to ~1 %.
* Agatston score of the aortic valve from the rendered (blurred, noisy) voxels, see
  :func:`agatston`. Agatston is defined on non-contrast CT with a 130 HU threshold; here the blood
  pool itself is ~300 HU, so the score uses threshold max(130, blood + 150) where ``blood`` is the
  median HU of the LV mid-cavity (a reader's blood-pool ROI), within the aortic-valve region of
  interest (a cylinder around the root axis from 5 mm below the annulus to 6 mm above the cusps,
  radius annulus + 5 mm). With that threshold every counted lesion has a peak >= 400 HU (density
  weight 4). Aortic stenosis = score >= 2000 (men) or >= 1300 (women).

Acquisition: isotropic in-plane spacing, contiguous slices; the scanner point-spread function is a
Gaussian in-plane (sigma 0.4-0.65 mm) and a 3-tap slice-sensitivity profile along z; noise is
Gaussian, added before the PSF and scaled so that its standard deviation after it is ``noise_hu``
(10-20 HU). Calcium nodules are integrated analytically over each voxel (error functions), so
small nodules are not missed between thick slices. ``fov="chest"``: the whole chest, 512 x 512 at
0.6-0.9 mm, 1.5-3 mm slices; ``fov="cardiac"``: a tight heart-centred reconstruction, 192 x 192 at
0.7-0.9 mm (134-173 mm; the pixel widened where the whole heart and aortic root would not fit),
130-160 mm at 2-3 mm slices. Voxel order (i, j, k) with k the slice axis
(inferior -> superior); ``orientation`` 'RAS' (affine diagonal +sx, +sy, +sz) or 'LPS' (-sx, -sy,
+sz, the array flipped along i and j), the same anatomy in world space either way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from scipy.special import erf

from . import portable_math as pmath

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


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / pmath.norm(v)


def _t(v) -> Vec:
    return tuple(float(a) for a in v)


def as_label(score: float, sex: str) -> int:
    """Severe aortic stenosis by the sex-specific Agatston cut-off (>= 2000 men, >= 1300 women)."""
    return int(score >= AS_THRESHOLD[sex])


# ------------------------------------------------------------------------------ sampling


def _lv_design(rng: np.random.Generator, male: bool, g: float) -> dict:
    """EF of a referral cohort (~25 % below 50 %), EDV (dilated when EF is low), shape, shortening."""
    u = rng.uniform
    r = rng.random()
    if r < 0.74:
        ef = float(np.clip(rng.normal(61, 5), 51, 75))
    elif r < 0.85:
        ef = u(40, 50)
    else:
        ef = u(20, 40)
    low = max(0.0, 55 - ef)
    edv = float(np.clip(rng.normal(135 if male else 108, 16) * math.pow(g, 3) * (1 + 0.022 * low), 70, 330))
    trunc = u(0.35, 0.5)
    ratio = u(1.9, 2.3) - 0.01 * low  # c / R: dilated ventricles are more spherical
    gf = (trunc + 1) - (math.pow(trunc, 3) + 1) / 3
    R = math.pow(edv * 1000 / (np.pi * ratio * gf), 1 / 3)
    fl = u(0.10, 0.16) * min(1.0, ef / 60)
    fr = 1 - math.sqrt((1 - ef / 100) / (1 - fl))
    wall = (u(8.5, 11.0) if male else u(7.5, 10.0)) * (1 - 0.006 * low)
    return dict(r_ed=float(R), c_ed=float(ratio * R), trunc=float(trunc), fr=float(fr), fl=float(fl),
                wall=float(wall), wall_apex=float(wall * u(0.6, 0.8)))


def _frame(axis: np.ndarray, toward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors normal to ``axis``: the one nearest ``toward``, and axis x it."""
    e2 = _unit(toward - pmath.dot(toward, axis) * axis)
    return e2, np.cross(axis, e2)


def _ell_bbox(c, rows, semi) -> tuple[np.ndarray, np.ndarray]:
    half = np.sqrt(np.sum(np.square(np.asarray(rows) * np.asarray(semi)[:, None]), axis=0))
    return np.asarray(c) - half, np.asarray(c) + half


def _vessel_tree(rng, hilum, side, g, depth=4):
    """Branching tapered segments from a hilum, spreading laterally (side = +1 right, -1 left)."""
    segs = []

    def grow(p, d, length, r, k):
        q = p + d * length
        segs.append((_t(p), _t(q), float(r), float(r * 0.8)))
        if k == 0:
            return
        for _ in range(2):
            nd = _unit(d + rng.normal(0, 0.55, 3))
            if nd[0] * side < 0.1:  # keep spreading away from the mediastinum
                nd = _unit(nd + np.array([side * 0.6, 0, 0]))
            grow(q, nd, length * rng.uniform(0.7, 0.85), r * rng.uniform(0.65, 0.78), k - 1)

    for dz, dy in ((1.0, 0.2), (0.1, 0.6), (-0.8, 0.3), (-0.6, -0.7), (0.3, -0.8)):
        d = _unit([side * rng.uniform(0.7, 1.2), dy + rng.normal(0, 0.2), dz + rng.normal(0, 0.2)])
        grow(np.asarray(hilum), d, rng.uniform(38, 52) * g, rng.uniform(4.0, 5.5) * g, depth)
    return segs


def _valve_calcium(rng, target, A, ax, q1, q2, ra, h_c, spacing, psf):
    """Nodules on the cusps until their predicted score reaches ``target``.

    A Gaussian nodule (sigma, amplitude ``amp`` above the blood pool) is seen after the PSF and the
    voxel as a Gaussian of sigma_i^2 = sigma^2 + psf_i^2 + s_i^2/12 with its integral kept; the voxels
    above blood + 150 HU fill an ellipsoid of semi-axes sigma_i sqrt(2 ln(peak/150)), and its
    Agatston score is 4 x volume / 3 mm (weight 4, areas summed over 3 mm-equivalent slices), counted
    at ``CALCIUM_GAIN`` of it. The label is the score measured on the rendered volume, not this one."""
    blobs, score = [], 0.0
    sig2 = np.square(np.asarray([psf, psf, 0.45 * spacing[2]])) + np.square(np.asarray(spacing)) / 12
    while score < target and len(blobs) < 400:
        # a cluster: a calcified ridge along a cusp, mostly near the hinge
        th0 = rng.uniform(0, 2 * np.pi)
        r0 = ra * math.sqrt(rng.uniform(0.25, 0.95))
        n = int(rng.integers(2, 7))
        for _ in range(n):
            th = th0 + rng.normal(0, 0.25)
            r = float(np.clip(r0 + rng.normal(0, 1.5), 0.1 * ra, 0.98 * ra))
            h = h_c * (1 - r / ra) + rng.normal(0, 0.6)
            p = A + ax * h + r * (np.cos(th) * q1 + np.sin(th) * q2)
            sigma = rng.uniform(0.8, 2.0)
            amp = rng.uniform(350, 950)
            s_eff = np.sqrt(sigma**2 + sig2)
            peak = amp * math.pow(sigma, 3) / np.prod(s_eff)
            if peak > CALCIUM_ABOVE_BLOOD:
                vol = 4 / 3 * np.pi * np.prod(s_eff) * math.pow(2 * math.log(peak / CALCIUM_ABOVE_BLOOD), 1.5)
                score += 4 * vol / 3 * CALCIUM_GAIN
            blobs.append((*_t(p), float(sigma), float(amp)))
            if score >= target:
                break
    return tuple(blobs)


def sample(rng: np.random.Generator, fov: str = "cardiac") -> CTPhantom:
    """Draw one patient and its scan; ``fov`` 'cardiac' (heart-centred, small) or 'chest'."""
    if fov not in FOVS:
        raise ValueError(f"unknown fov {fov!r}; one of {FOVS}")
    u = rng.uniform
    male = rng.random() < 0.55
    sex = "M" if male else "F"
    g = float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.15)) * (1.0 if male else 0.94)
    lvd = _lv_design(rng, male, g)

    # ---- torso
    a_body = u(150, 180) * g
    b_body = a_body * u(0.6, 0.72)
    fat = u(8, 24) + (0 if male else 5)
    muscle = u(10, 16)
    y_c = u(3, 8)
    a_c = a_body - fat - muscle - 10
    b_c = b_body - fat - muscle - 10 - y_c
    r_v = u(15, 19) * g
    y_v = y_c - b_c + u(12, 18) * g
    y_eso = y_v + 0.85 * r_v + 8

    # ---- heart and aortic root (z = 0 at the annulus)
    A = np.array([u(-6, 8) * g, y_v + r_v + u(52, 64) * g, 0.0])
    B = A + np.array([-u(8, 14), -u(2, 8), -u(8, 14)]) * g
    d = _unit([-u(0.6, 0.85), u(0.3, 0.5), -u(0.35, 0.6)])
    if pmath.dot(A - B, -d) < 6:  # the annulus sits above the LV base plane
        B = B + d * (6 - pmath.dot(A - B, -d))
    e2, e3 = _frame(d, np.array([1.0, 0.7, 0.1]))
    L = (1 + lvd["trunc"]) * lvd["c_ed"]
    r_epi = lvd["r_ed"] + lvd["wall"]
    rv_depth = u(14, 20) * g
    rv_c = B + d * L * u(0.35, 0.42) + e2 * (r_epi + rv_depth) * 0.45
    rv_semi = np.array([L * u(0.45, 0.52), (r_epi + rv_depth) * 0.5 + 3, r_epi * u(0.95, 1.1)])
    ra_c = A + np.array([u(30, 40), -u(5, 15), -u(10, 22)]) * g
    ra_semi = np.array([u(20, 25), u(18, 23), u(22, 27)]) * g
    la_semi = np.array([u(22, 28), u(13, 17), u(18, 23)]) * g
    la_c = np.array([B[0] - u(0, 8), max(B[1] - u(22, 30) * g, y_eso + 9 + la_semi[1]), B[2] + u(4, 12)])
    ra_r = u(11, 13) if male else u(10, 11.5)
    ax = _unit([u(0.2, 0.45), u(0.15, 0.4), 1.0])
    epi_fat = u(2.5, 8)

    # fit the body around the heart (the heart never pierces the chest wall)
    hb_lo, hb_hi = _ell_bbox(B + d * (L - lvd["c_ed"]), np.stack([d, e2, e3]),
                             np.array([lvd["c_ed"] + lvd["wall_apex"], r_epi, r_epi]))
    rv_lo, rv_hi = _ell_bbox(rv_c, np.stack([d, e2, e3]), rv_semi + 3.5)
    front = max(hb_hi[1], rv_hi[1]) + epi_fat + 4 - (y_c + b_c)
    body_y = 0.0
    if front > 0:  # move the chest wall forward, the back stays
        b_c, y_c = b_c + front / 2, y_c + front / 2
        b_body, body_y = b_body + front / 2, front / 2
    side = -min(hb_lo[0], rv_lo[0]) + epi_fat + 15 - a_c
    if side > 0:
        a_c += side
        a_body += side

    # ---- lungs, diaphragm
    z_lowest = float(min(hb_lo[2], rv_lo[2]))
    z_ld = z_lowest - u(0, 8)
    domes = (z_ld + u(10, 25), z_ld, 0.45 * a_c, y_c + 0.1 * b_c, u(90, 130) * g)
    z_apex = u(120, 155) * g
    lung_top = (z_apex, 0.45 * a_c, y_c - 0.2 * b_c, u(70, 100) * g)
    x_m, w_m = u(-4, 4), u(18, 26) * g

    # ---- vessels and airways
    z_arch = u(55, 72) * g
    r_asc = (u(14, 17.5) if male else u(13, 16)) * g
    r_desc = u(10.5, 13.5) * g
    x_desc = -(r_v + r_desc + u(2, 6))
    y_desc = y_v + u(4, 12)
    y_tr = y_eso + 19
    stj = A + ax * 22
    top = np.array([stj[0] + u(0, 8), stj[1] + u(-4, 6), z_arch])
    dtop = np.array([x_desc, y_desc, z_arch])
    mid = 0.5 * (top + dtop) + np.array([0, 0, u(22, 32)])
    arch = [(1 - s) ** 2 * top + 2 * s * (1 - s) * mid + s * s * dtop for s in np.linspace(0, 1, 7)]
    z_bottom = z_ld - 140
    z_car = z_arch - u(8, 18)
    hil_r = np.array([w_m + 28, la_c[1] + u(5, 15), la_c[2] + u(0, 10)])
    hil_l = np.array([-(w_m + 30), la_c[1] + u(0, 10), la_c[2] + u(5, 15)])
    pa0 = A + np.array([-18, 14, -4]) * g
    pa1 = A + np.array([-16, -16, 30]) * g
    tubes = [("tissue", (x_m - 6, y_eso, z_bottom), (x_m - 6, y_eso, z_apex + 60), 8.0, 8.0),
             ("air", (x_m, y_tr, z_apex + 60), (x_m, y_tr, z_car), 9.0 * g, 9.0 * g),
             ("air", (x_m, y_tr, z_car), _t(hil_r + [-12, 0, 8]), 7.0 * g, 6.0 * g),
             ("air", (x_m, y_tr, z_car), _t(hil_l + [12, 0, 6]), 6.5 * g, 5.5 * g),
             ("aorta", (x_desc, y_desc, z_arch), (x_desc + 6, y_desc + 6, z_bottom), r_desc, r_desc * 0.95),
             ("aorta", _t(stj), _t(top), r_asc, r_asc)]
    tubes += [("aorta", _t(p), _t(q), r_asc + (r_desc - r_asc) * i / 6, r_asc + (r_desc - r_asc) * (i + 1) / 6)
              for i, (p, q) in enumerate(zip(arch[:-1], arch[1:]))]
    svc_b = ra_c + np.array([0, 0, ra_semi[2] * 0.6])
    tubes += [("vein", _t(svc_b), (svc_b[0] + 2, svc_b[1] - 4, z_apex + 60), 9.5 * g, 9.0 * g),
              ("vein", _t(ra_c), (ra_c[0] - 5, ra_c[1] - 12, z_bottom), 11 * g, 11 * g),
              ("vein", _t(pa0), _t(pa1), 13 * g, 13 * g),
              ("vein", _t(pa1), _t(hil_l), 10 * g, 8 * g),
              ("vein", _t(pa1), _t(np.array([A[0] + 8, A[1] - 32, pa1[2] - 6])), 10 * g, 10 * g),
              ("vein", _t(np.array([A[0] + 8, A[1] - 32, pa1[2] - 6])), _t(hil_r), 10 * g, 8 * g)]
    for sx_ in (1, -1):
        for dz in (10, -10):
            end = np.array([sx_ * (w_m + 38), la_c[1] + u(-5, 5), la_c[2] + dz + u(-4, 4)])
            tubes.append(("blood", _t(la_c), _t(end), 7.0 * g, 6.0 * g))
    lung_vessels = _vessel_tree(rng, hil_r, 1, g) + _vessel_tree(rng, hil_l, -1, g)

    # ---- acquisition
    if fov == "cardiac":
        # keep the whole LV (with its fat) and the valve region inside the volume
        lo = np.minimum(hb_lo - epi_fat, A - 25) - 4
        hi = np.maximum(hb_hi + epi_fat, A + 25) + 4
        nx = ny = 192
        sx = round(max(u(0.70, 0.90), float(np.max(hi[:2] - lo[:2])) / (nx - 1) + 1e-3), 4)
        sz = float(rng.choice([2.0, 2.5, 3.0]))
        nz = int(round(u(130, 160) / sz))
        c = B + d * 0.5 * L + e2 * 10 + rng.normal(0, 6, 3)
        half = (np.array([nx, ny, nz]) - 1) / 2 * np.array([sx, sx, sz])
        c = np.clip(c, hi - half, lo + half)
    else:
        c = np.array([u(-5, 5), body_y + u(-10, 5), 0.0])
        extent = 2 * max(a_body + abs(c[0]), b_body + abs(c[1] - body_y))  # the whole body, if it can
        sx = round(float(np.clip((extent + u(10, 40)) / 512, 0.6, 0.9)), 4)
        sz = float(rng.choice([1.5, 2.0, 2.5, 3.0]))
        nx = ny = 512
        z0, z1 = z_ld - u(25, 45), z_apex + u(5, 20)
        nz = int(math.ceil((z1 - z0) / sz))
        c[2] = 0.5 * (z0 + z1)
    spacing = (float(sx), float(sx), float(sz))
    psf = u(0.4, 0.65)
    blood = u(250, 350)

    # ---- aortic valve calcium: a referral cohort, ~25 % severe by the sex-specific cut-off
    q1, q2 = _frame(ax, np.array([1.0, 0.0, 0.0]))
    h_c = u(6, 9) * g
    if rng.random() < 0.32:
        design = 0.0
    else:
        design = float(min(math.pow(10, rng.normal(3.13, 0.6)), 8000.0)) * (1.0 if male else 0.65)
    calcium = _valve_calcium(rng, design, A, ax, q1, q2, ra_r, h_c, spacing, psf) if design > 0 else ()
    coronary = ()
    if rng.random() < 0.33:
        ant = e3 if e3[1] > 0 else -e3
        groove = _unit(0.45 * e2 + ant)
        blobs = []
        for _ in range(int(rng.integers(1, 4))):
            t = u(0.25, 0.6)
            h = (1 - t) * L  # height above the apex
            rr = r_epi * math.sqrt(max(0.05, 1 - ((h - lvd["c_ed"]) / (lvd["c_ed"] + lvd["wall_apex"])) ** 2))
            p = B + d * t * L + groove * (rr + 0.5 * epi_fat)
            blobs.append((*_t(p), float(u(0.8, 1.5)), float(u(400, 800))))
        coronary = tuple(blobs)

    return CTPhantom(
        fov=fov, sex=sex, size=g, orientation=str(rng.choice(ORIENTATIONS)), spacing=spacing,
        shape=(nx, ny, nz), fov_center=_t(c),
        origin=(float(u(-15, 15)), float(u(-40, 20)), float(u(-650, -150))),
        noise_hu=float(u(10, 20)), psf_mm=float(psf),
        blood_hu=float(blood), rv_hu=float(blood * u(0.8, 1.05)), myo_hu=float(u(90, 125)),
        fat_hu=float(u(-105, -80)), muscle_hu=float(u(35, 55)), lung_hu=float(u(-880, -830)),
        lung_gradient=float(u(30, 80)), liver_hu=float(u(95, 130)),
        body=(float(a_body), float(b_body), float(body_y)), fat_mm=float(fat), muscle_mm=float(muscle),
        cavity=(float(a_c), float(b_c), float(y_c)), lung_top=_t(lung_top), domes=_t(domes),
        mediastinum=(float(x_m), float(w_m)),
        spine=(float(y_v), float(r_v), float(u(24, 30)), float(u(0, 30)), float(u(250, 380)), float(u(600, 900))),
        ribs=(float(u(24, 30)), float(u(0, 30)), float(u(60, 90)), float(u(5, 7))),
        base=_t(B), axis=_t(d), septal=_t(e2), epi_fat=float(epi_fat),
        rv=(_t(rv_c), _t(rv_semi)), ra=(_t(ra_c), _t(ra_semi)), la=(_t(la_c), _t(la_semi)),
        cycle=(float(u(0.30, 0.38)), float(u(0.55, 0.62)), float(u(0, 1))),
        annulus=_t(A), root_axis=_t(ax), annulus_r=float(ra_r), leaflet_h=float(h_c),
        tubes=tuple(tubes), lung_vessels=tuple(lung_vessels), calcium=calcium, coronary=coronary,
        calcium_design=float(design), **lvd)


# ------------------------------------------------------------------------------ rasterising


def _axes(ph: CTPhantom) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient-frame coordinates (mm) of the voxel centres along i, j, k of the RAS-ordered array."""
    return tuple(((np.arange(n) - (n - 1) / 2) * s + c).astype(np.float32)
                 for n, s, c in zip(ph.shape, ph.spacing, ph.fov_center))


class _Grid:
    def __init__(self, ph: CTPhantom):
        self.x, self.y, self.z = _axes(ph)
        self.edge = float(min(ph.spacing[:2]))

    def box(self, lo, hi):
        """Index box and coordinate vectors (broadcastable) of the voxels inside [lo, hi]."""
        idx = []
        for v, a, b in zip((self.x, self.y, self.z), lo, hi):
            i0, i1 = int(np.searchsorted(v, a)), int(np.searchsorted(v, b, side="right"))
            if i1 <= i0:
                return None
            idx.append(slice(i0, i1))
        return (tuple(idx), self.x[idx[0], None, None], self.y[None, idx[1], None], self.z[None, None, idx[2]])


def _soft(sd: np.ndarray, edge: float, grow: float = 0.0) -> np.ndarray:
    """Partial-volume membership from a signed distance (mm, negative inside) of a shape grown by
    ``grow`` mm: a linear ramp ``edge`` wide."""
    m = sd * np.float32(-1.0 / edge)
    m += np.float32(0.5 + grow / edge)
    return np.clip(m, 0.0, 1.0, out=m)


@dataclass(frozen=True)
class _Capsule:
    a: Vec
    b: Vec
    r0: float
    r1: float

    def bbox(self, m):
        a, b, r = np.asarray(self.a), np.asarray(self.b), max(self.r0, self.r1) + m
        return np.minimum(a, b) - r, np.maximum(a, b) + r

    def sd(self, X, Y, Z):
        ax, ay, az = self.a
        dx, dy, dz = (float(q - p) for p, q in zip(self.a, self.b))
        l2 = max(dx * dx + dy * dy + dz * dz, 1e-6)
        px, py, pz = X - np.float32(ax), Y - np.float32(ay), Z - np.float32(az)
        t = (px * np.float32(dx / l2) + py * np.float32(dy / l2)) + pz * np.float32(dz / l2)
        np.clip(t, 0, 1, out=t)
        ex, ey, ez = px - t * np.float32(dx), py - t * np.float32(dy), pz - t * np.float32(dz)
        out = np.sqrt(ex * ex + ey * ey + ez * ez)
        out -= self.r0 + (self.r1 - self.r0) * t
        return out


@dataclass(frozen=True)
class _Ellipsoid:
    c: Vec
    rows: tuple[Vec, Vec, Vec]  # unit vectors of the semi-axes
    semi: Vec
    cut: tuple[Vec, float] | None = None  # keep n . (p - c) <= offset

    def bbox(self, m):
        lo, hi = _ell_bbox(self.c, self.rows, self.semi)
        return lo - m, hi + m

    def sd(self, X, Y, Z):
        dX, dY, dZ = X - np.float32(self.c[0]), Y - np.float32(self.c[1]), Z - np.float32(self.c[2])
        k0 = k1 = 0
        for r, s in zip(self.rows, self.semi):
            t = (dX * np.float32(r[0] / s) + dY * np.float32(r[1] / s)) + dZ * np.float32(r[2] / s)
            k0 = k0 + t * t
            t *= np.float32(1 / s)
            k1 = k1 + t * t
        k0 = np.sqrt(k0)
        out = k0 * (k0 - 1) / np.sqrt(np.maximum(k1, 1e-12))
        if self.cut is not None:
            n, off = self.cut
            plane = (dX * np.float32(n[0]) + dY * np.float32(n[1])) + dZ * np.float32(n[2]) - np.float32(off)
            np.maximum(out, plane, out=out)
        return out


def _field(gr: _Grid, prim, margin: float = 0.0):
    """(index box, signed distance) of ``prim`` over the voxels within ``margin`` mm of it."""
    b = gr.box(*prim.bbox(margin + 2 * gr.edge))
    if b is None:
        return None
    sl, X, Y, Z = b
    return sl, prim.sd(X, Y, Z)


def _paint(vol, gr, prim, hu, alpha=1.0, grow=0.0, lung_only=False, field=None):
    """Composite ``hu`` over ``vol`` with the partial-volume membership of ``prim`` grown by ``grow``
    mm (``field``: its precomputed :func:`_field` with a margin of at least ``grow``)."""
    f = field if field is not None else _field(gr, prim, grow)
    if f is None:
        return
    sl, sd = f
    m = _soft(sd, gr.edge, grow)
    if alpha != 1.0:
        m *= np.float32(alpha)
    v = vol[sl]
    if lung_only:
        m *= v < -400
    v += m * (np.float32(hu) - v)


def _ellipse_sd(X, Y, cx, cy, a, b):
    """Approximate signed distance to an axis-aligned ellipse, exact on circles."""
    dx, dy = X - np.float32(cx), Y - np.float32(cy)
    rho = np.sqrt(dx * dx + dy * dy)
    q = np.sqrt(np.square(dx * np.float32(1 / a)) + np.square(dy * np.float32(1 / b)))
    return rho - rho / np.maximum(q, 1e-6)


def _torso(ph: CTPhantom, gr: _Grid, vol: np.ndarray) -> None:
    """Body wall, lungs between the apical and diaphragmatic domes, abdomen below, neck above."""
    e = gr.edge
    X, Y = gr.x[:, None], gr.y[None, :]
    a, b, yb = ph.body
    body_sd = _ellipse_sd(X, Y, 0, yb, a, b)
    wall = AIR + _soft(body_sd, e) * (ph.fat_hu - AIR)
    f = ph.fat_mm
    wall += _soft(_ellipse_sd(X, Y, 0, yb, a - f, b - f), e) * (ph.muscle_hu - wall)
    a_c, b_c, y_c = ph.cavity
    cav = _soft(_ellipse_sd(X, Y, 0, y_c, a_c, b_c), e)
    lung = np.broadcast_to(ph.lung_hu + ph.lung_gradient * np.clip(0.5 - 0.5 * (Y - y_c) / b_c, 0, 1), wall.shape)
    z_ap, x_ap, y_ap, r_ap = ph.lung_top
    z_top = z_ap - (np.square(np.abs(X) - x_ap) + np.square(Y - y_ap)) / (2 * r_ap)
    z_r, z_l, x_d, y_d, r_d = ph.domes
    dome = np.maximum(z_r - (np.square(X - x_d) + np.square(Y - y_d)) / (2 * r_d),
                      z_l - (np.square(X + x_d) + np.square(Y - y_d)) / (2 * r_d))
    dome = np.maximum(dome, z_l - 75)
    liver = X > -20 - 0.4 * (Y - y_c)
    abd = np.where(liver, ph.liver_hu, 0.5 * ph.liver_hu - 5).astype(np.float32)
    neck = np.float32(ph.muscle_hu)
    pure = (wall + cav * (lung - wall)).astype(np.float32)
    inside = cav > 0
    dmax, tmin = float(dome[inside].max()), float(z_top[inside].min())
    for k, z in enumerate(gr.z):
        z = float(z)
        if dmax + e < z < tmin - e:
            vol[:, :, k] = pure
            continue
        low = np.clip((dome - z) / e + 0.5, 0, 1)
        high = np.clip((z - z_top) / e + 0.5, 0, 1)
        lf = np.clip(1 - low - high, 0, 1)
        inner = lf * lung + low * abd + high * neck
        vol[:, :, k] = wall + cav * (inner - wall)


def _mediastinum(ph: CTPhantom, gr: _Grid, vol: np.ndarray) -> None:
    """Fat and soft tissue between the lungs, from the diaphragm to the thoracic inlet; paraspinal muscle."""
    e = gr.edge
    a_c, b_c, y_c = ph.cavity
    x_m, w_m = ph.mediastinum
    y_v, r_v = ph.spine[:2]
    y0, y1 = y_v, y_c + b_c + 5
    z_mid = ph.annulus[2] - 15  # above: the whole sternum-spine band; below: behind the heart only
    for lo, hi in (((x_m - w_m, y0, z_mid), (x_m + w_m, y1, ph.lung_top[0] + 40)),
                   ((x_m - w_m, y0, ph.domes[1] - 10), (x_m + w_m, ph.la[0][1], z_mid + 1))):
        b = gr.box(np.asarray(lo) - 3, np.asarray(hi) + 3)
        if b is None:
            continue
        sl, X, Y, Z = b
        cx, cy, hx, hy = 0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1]), 0.5 * (hi[0] - lo[0]), 0.5 * (hi[1] - lo[1])
        sd = _ellipse_sd(X, Y, cx, cy, hx, hy)
        sd = np.maximum(sd, np.abs(Z - 0.5 * (lo[2] + hi[2])) - 0.5 * (hi[2] - lo[2]))
        m = _soft(sd, e)
        v = vol[sl]
        v += m * (np.float32(-50.0) - v)
    # paraspinal muscle and the posterior chest wall around the spine
    back = y_c - b_c - 12
    b = gr.box((-r_v - 10, back - 2, gr.z[0]), (r_v + 10, y_v + 4, gr.z[-1]))
    if b is not None:
        sl, X, Y, _ = b
        sd = np.maximum(np.abs(X[:, :, 0]) - r_v - 8, np.abs(Y[:, :, 0] - 0.5 * (y_v + back)) - 0.5 * (y_v - back))
        m = _soft(sd, e)[:, :, None]
        v = vol[sl]
        v += m * (np.float32(ph.muscle_hu) - v)


def _spine(ph: CTPhantom, gr: _Grid, vol: np.ndarray) -> None:
    """Vertebral bodies (cortex, cancellous bone, discs), canal, arch, spinous process; sternum."""
    e = gr.edge
    y_v, r_v, period, phase, canc, cort = ph.spine
    b = gr.box((-r_v - 14, y_v - 2.2 * r_v - 40, gr.z[0]), (r_v + 14, y_v + r_v + 3, gr.z[-1]))
    if b is not None:
        sl, X, Y, _ = b
        X, Y = X[:, :, 0], Y[:, :, 0]
        vb = _ellipse_sd(X, Y, 0, y_v, r_v, 0.85 * r_v)
        outer, inner = _soft(vb, e), _soft(vb + 2.0, e)
        y_can = y_v - 0.85 * r_v - 9
        rc = np.sqrt(np.square(X) + np.square(Y - y_can))
        arch = _soft(np.abs(rc - 9.5) - 2.2, e) * (Y < y_can + 4)
        spin = _soft(np.maximum(np.abs(X) - 3.5, np.maximum(y_can - 36 - Y, Y - (y_can - 10))), e)
        post = np.clip(arch + spin, 0, 1)
        canal = _soft(rc - 7.5, e)
        v = vol[sl]
        for k in range(v.shape[2]):
            z = float(gr.z[sl[2]][k])
            w = (z - phase) / period
            dist = abs(w - round(w)) * period  # from the middle of the nearest disc
            fd = float(np.clip((3.0 - dist) / ph.spacing[2] + 0.5, 0, 1))
            vk = v[:, :, k]
            vk += outer * (np.float32((1 - fd) * cort + fd * 90.0) - vk)
            vk += inner * (np.float32((1 - fd) * canc + fd * 90.0) - vk)
            vk += canal * (np.float32(15.0) - vk)
            vk += post * (np.float32(0.5 * (canc + cort)) - vk)
    # sternum
    a_c, b_c, y_c = ph.cavity
    ys = y_c + b_c + 6
    b = gr.box((-18, ys - 9, ph.domes[0] - 10), (18, ys + 9, ph.lung_top[0] - 30))
    if b is not None:
        sl, X, Y, _ = b
        sd = _ellipse_sd(X[:, :, 0], Y[:, :, 0], 0, ys, 14, 6)
        outer, inner = _soft(sd, e)[:, :, None], _soft(sd + 1.5, e)[:, :, None]
        v = vol[sl]
        v += outer * (np.float32(cort * 0.8) - v)
        v += inner * (np.float32(canc * 0.8) - v)


def rib_band(ph: CTPhantom, gr: _Grid, margin: float = 0.0):
    """Where the ribs run: the voxel columns (ii, jj) within 4 mm + ``margin`` of the rib layer (an
    ellipse around the chest cavity, open at the sternum and the spine), and for each column along z
    the normalised distance ``kk`` to the nearest rib's centre (<= 1 inside a rib), the rib band index
    ``w`` (rounded: which rib, counted by period), whether the column is costal cartilage (anterior)
    and whether it is on the patient's right. None when no column is near."""
    a_c, b_c, y_c = ph.cavity
    period, phase, drop, hh = ph.ribs
    r_v = ph.spine[1]
    X, Y = gr.x[:, None], gr.y[None, :]
    dx, dy = np.broadcast_arrays(X, Y - np.float32(y_c))
    rho = np.sqrt(dx * dx + dy * dy)
    q = np.sqrt(np.square(dx / (a_c + 5)) + np.square(dy / (b_c + 5)))
    dr = rho - rho / np.maximum(q, 1e-6)
    keep = (np.abs(dr) < 4.0 + margin) & ~((np.abs(dx) < 20) & (dy > 0)) & ~((np.abs(dx) < r_v + 10) & (dy < 0))
    ii, jj = np.nonzero(keep)
    if ii.size == 0:
        return None
    drk = dr[ii, jj][:, None]
    sin = (dy / np.maximum(rho, 1e-6))[ii, jj][:, None]
    cart = ((np.abs(dx) < 45) & (dy > 0))[ii, jj][:, None]
    shift = drop * (1 + sin) / 2
    z = gr.z[None, :]
    w = (z - phase + shift) / period
    dz = (w - np.round(w)) * period
    kk = np.sqrt(np.square(drk / 4.0) + np.square(dz / hh))
    return ii, jj, kk, w, cart, (dx[ii, jj] >= 0)[:, None]


def airways_and_soft_tissue(ph: CTPhantom, gr: _Grid, vol: np.ndarray) -> None:
    """The phantom's soft-tissue tubes (40 HU) and airways (air inside a 60 HU wall)."""
    for kind, a, b, r0, r1 in ph.tubes:
        if kind == "tissue":
            _paint(vol, gr, _Capsule(a, b, r0, r1), 40.0)
        elif kind == "air":
            _paint(vol, gr, _Capsule(a, b, r0, r1), 60.0, grow=1.5)
            _paint(vol, gr, _Capsule(a, b, r0, r1), AIR)


def _ribs(ph: CTPhantom, gr: _Grid, vol: np.ndarray) -> None:
    """Ribs: oblique bands on an ellipse in the rib layer, descending anteriorly, cut by each slice."""
    e = gr.edge
    _, _, _, _, canc, cort = ph.spine
    band = rib_band(ph, gr, 2 * e)
    if band is None:
        return
    ii, jj, kk, _, cart, _ = band
    outer = _soft((kk - 1) * 4.0, e)
    inner = _soft((kk - 0.55) * 4.0, e)
    v = vol[ii, jj, :]
    hu_o = np.where(cart, np.float32(140.0), np.float32(cort))
    hu_i = np.where(cart, np.float32(110.0), np.float32(canc * 0.8))
    v += outer * (hu_o - v)
    v += inner * (hu_i - v)
    vol[ii, jj, :] = v


def _leaflets(ph: CTPhantom, X, Y, Z) -> np.ndarray:
    """Signed distance to the closed aortic cusps: a cone from the annulus up to the coaptation
    centre, plus the three coaptation sheets (the 'Mercedes star')."""
    A, ax = np.asarray(ph.annulus), np.asarray(ph.root_axis)
    q1, q2 = _frame(ax, np.array([1.0, 0.0, 0.0]))
    dX, dY, dZ = X - np.float32(A[0]), Y - np.float32(A[1]), Z - np.float32(A[2])
    h = dX * np.float32(ax[0]) + dY * np.float32(ax[1]) + dZ * np.float32(ax[2])
    v1 = dX * np.float32(q1[0]) + dY * np.float32(q1[1]) + dZ * np.float32(q1[2])
    v2 = dX * np.float32(q2[0]) + dY * np.float32(q2[1]) + dZ * np.float32(q2[2])
    r = np.sqrt(v1 * v1 + v2 * v2)
    ra, hc = ph.annulus_r, ph.leaflet_h
    cosa = 1 / math.sqrt(1 + (hc / ra) ** 2)
    sd = np.maximum(np.abs(h - hc * (1 - r / ra)) * np.float32(cosa) - 0.7, r - ra)
    for j in range(3):
        th = 2 * np.pi * j / 3 + 0.3
        c, s = math.cos(th), math.sin(th)
        along = v1 * np.float32(c) + v2 * np.float32(s)
        perp = np.abs(v2 * np.float32(c) - v1 * np.float32(s))
        hs = hc * (1 - along / ra) + 1.5
        sheet = np.maximum(np.maximum(perp - 0.6, np.abs(h - hs) - 1.5), np.maximum(-along, along - ra))
        np.minimum(sd, sheet, out=sd)
    return sd


def heart_primitives(ph: CTPhantom) -> tuple[_Ellipsoid, _Ellipsoid, _Ellipsoid, _Ellipsoid]:
    """The heart's static shapes: the LV epicardium at end-diastole (truncated at its base), the RV,
    and the right and left atria."""
    d, e2 = np.asarray(ph.axis), np.asarray(ph.septal)
    e3 = np.cross(d, e2)
    rows = (_t(d), _t(e2), _t(e3))
    g0 = ph.lv(0.0)
    lv_c = ph.apex - d * g0["c"]
    epi = _Ellipsoid(_t(lv_c), rows, (float(g0["C"]), float(g0["a"]), float(g0["a"])),
                     ((_t(-d)), float(ph.trunc * g0["c"])))
    rv = _Ellipsoid(ph.rv[0], rows, ph.rv[1])
    eye = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    return epi, rv, _Ellipsoid(ph.ra[0], eye, ph.ra[1]), _Ellipsoid(ph.la[0], eye, ph.la[1])


def _heart_static(ph: CTPhantom, gr: _Grid, vol: np.ndarray) -> None:
    """Epicardial fat, great vessels, atria, RV, aortic root and cusps (everything but the LV)."""
    epi, rv, ra, la = heart_primitives(ph)
    d, e2 = np.asarray(ph.axis), np.asarray(ph.septal)
    A, ax = np.asarray(ph.annulus), np.asarray(ph.root_axis)
    sinus = _Capsule(_t(A + ax * 4), _t(A + ax * 16), ph.annulus_r * 1.3, ph.annulus_r * 1.2)
    f = ph.epi_fat
    fields = {}
    for name, prim, grow in (("epi", epi, f), ("rv", rv, 3.5 + f), ("ra", ra, 3), ("la", la, 3), ("sinus", sinus, 3)):
        fields[name] = _field(gr, prim, grow)
        _paint(vol, gr, prim, ph.fat_hu, grow=grow, field=fields[name])
    hu = {"aorta": ph.blood_hu, "blood": ph.blood_hu, "vein": ph.rv_hu}
    for kind, a, b, r0, r1 in ph.tubes:
        if kind in hu:
            _paint(vol, gr, _Capsule(a, b, r0, r1), hu[kind])
    _paint(vol, gr, la, ph.blood_hu, field=fields["la"])
    _paint(vol, gr, ra, ph.rv_hu, field=fields["ra"])
    _paint(vol, gr, rv, ph.myo_hu * 0.95, grow=3.5, field=fields["rv"])
    _paint(vol, gr, rv, ph.rv_hu, field=fields["rv"])
    # mitral inflow and LV outflow tract join the LV to the left atrium and the aortic root; they are
    # blood wherever the moving base uncovers them
    B = np.asarray(ph.base)
    _paint(vol, gr, _Capsule(_t(B + d * 10), ph.la[0], 0.55 * ph.r_ed, 0.45 * ph.r_ed), ph.blood_hu)
    _paint(vol, gr, _Capsule(_t(B + d * 8 + e2 * 8), _t(A), ph.annulus_r * 0.95, ph.annulus_r), ph.blood_hu)
    _paint(vol, gr, sinus, ph.blood_hu, field=fields["sinus"])
    _paint(vol, gr, _Capsule(_t(A + ax * 10), _t(A + ax * 26), ph.annulus_r * 1.1, ph.annulus_r * 1.25), ph.blood_hu)
    r = ph.annulus_r + 3
    b = gr.box(A - r - 2 * gr.edge, A + r + 2 * gr.edge)
    if b is not None:
        sl, X, Y, Z = b
        m = _soft(_leaflets(ph, X, Y, Z), gr.edge) * np.float32(ph.valve_closed())
        v = vol[sl]
        v += m * (np.float32(ph.myo_hu * 0.9) - v)


def _lv_box(ph: CTPhantom, gr: _Grid):
    d = np.asarray(ph.axis)
    e2 = np.asarray(ph.septal)
    g0 = ph.lv(0.0)
    lo, hi = _ell_bbox(ph.apex - d * g0["c"], np.stack([d, e2, np.cross(d, e2)]),
                       np.array([float(g0["C"]), float(g0["a"]), float(g0["a"])]))
    b = gr.box(lo - 2 * gr.edge, hi + 2 * gr.edge)
    if b is None:
        return None
    sl, X, Y, Z = b
    w = (X - np.float32(ph.apex[0]), Y - np.float32(ph.apex[1]), Z - np.float32(ph.apex[2]))
    h = -(w[0] * np.float32(d[0]) + w[1] * np.float32(d[1]) + w[2] * np.float32(d[2]))
    rho2 = w[0] * w[0] + w[1] * w[1] + w[2] * w[2] - h * h
    return sl, h, rho2


def _lv_inside(ph: CTPhantom, h, rho2, s: float) -> np.ndarray:
    """Voxel centres inside the cavity at contraction ``s``."""
    g = ph.lv(s)
    R, c = float(g["R"]), float(g["c"])
    return (rho2 * np.float32(1 / R**2) + np.square(h * np.float32(1 / c) - 1) <= 1) & (h <= np.float32(g["hb"]))


def _lv_cycle(ph: CTPhantom, gr: _Grid, vol: np.ndarray) -> None:
    """The LV averaged over the cycle. Per instant, a voxel holds the fractions b (cavity) and e (inside
    the epicardium, b <= e): blood b, myocardium e - b and, for 1 - e, the static anatomy painted
    under the LV (fat, RV blood at the septum, the atrium and outflow tract at the base). The average
    over the instants is the same mix with the mean fractions."""
    box = _lv_box(ph, gr)
    if box is None:
        return
    sl, h, rho2 = box
    e = gr.edge
    E = np.zeros(h.shape, np.float32)
    Bs = np.zeros(h.shape, np.float32)
    for s in ph.phases():
        g = ph.lv(float(s))
        a, C, R, c, hb = (float(g[k]) for k in ("a", "C", "R", "c", "hb"))
        plane = h - np.float32(hb)
        epi = np.sqrt(rho2 * np.float32(1 / a**2) + np.square((h - np.float32(c)) * np.float32(1 / C)))
        epi -= 1
        epi *= np.float32(a)  # ~ signed distance (mm) on the lateral walls
        me = _soft(np.maximum(epi, plane, out=epi), e)
        E += me
        cav = np.sqrt(rho2 * np.float32(1 / R**2) + np.square(h * np.float32(1 / c) - 1))
        cav -= 1
        cav *= np.float32(R)
        mb = _soft(np.maximum(cav, plane, out=cav), e)
        Bs += np.minimum(mb, me, out=mb)
    E *= np.float32(1 / N_PHASES)
    Bs *= np.float32(1 / N_PHASES)
    v = vol[sl]
    v *= 1 - E
    v += (E - Bs) * np.float32(ph.myo_hu) + Bs * np.float32(ph.blood_hu)


def _blobs(gr: _Grid, spacing, blobs, out: np.ndarray) -> None:
    """Add Gaussian nodules, each integrated over the voxels (error functions); overlapping
    nodules combine by their maximum, as one calcified mass."""
    if not blobs:
        return
    pts = np.asarray(blobs, dtype=np.float64)
    r = 4 * pts[:, 3:4] + max(spacing)
    b = gr.box(np.min(pts[:, :3] - r, axis=0), np.max(pts[:, :3] + r, axis=0))
    if b is None:
        return
    sl = b[0]
    layer = np.zeros(tuple(s.stop - s.start for s in sl), np.float32)
    coords = [gr.x[sl[0]].astype(np.float64), gr.y[sl[1]].astype(np.float64), gr.z[sl[2]].astype(np.float64)]
    for x, y, z, sig, amp in blobs:
        g = []
        for v, c, s in zip(coords, (x, y, z), spacing):
            k = 1 / (math.sqrt(2) * sig)
            g.append((erf((v + s / 2 - c) * k) - erf((v - s / 2 - c) * k)) * (sig * math.sqrt(math.pi / 2) / s))
        val = (amp * g[0][:, None, None] * g[1][None, :, None] * g[2][None, None, :]).astype(np.float32)
        np.maximum(layer, val, out=layer)
    out[sl] += layer


def _psf_noise(ph: CTPhantom, vol: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise (scaled to ``noise_hu`` after the PSF), Gaussian in-plane PSF, 3-tap slice profile."""
    sig = ph.psf_mm / ph.spacing[0]
    ks = 2 * int(math.ceil(3 * sig)) + 1
    k1 = cv2.getGaussianKernel(ks, sig).ravel()
    wz = 0.2
    gain = math.sqrt(float(np.sum(k1**2)) ** 2 * (2 * wz**2 + (1 - 2 * wz) ** 2))
    scale = np.float32(ph.noise_hu / gain)
    nz = vol.shape[2]
    out = np.empty_like(vol)
    for k0 in range(0, nz, 128):  # OpenCV (5) images have at most 128 channels
        chunk = np.ascontiguousarray(vol[:, :, k0:k0 + 128])
        chunk += rng.standard_normal(chunk.shape, dtype=np.float32) * scale
        blur = cv2.GaussianBlur(chunk, (ks, ks), sig, borderType=cv2.BORDER_REFLECT)
        out[:, :, k0:k0 + 128] = blur.reshape(chunk.shape)
    if nz >= 3:  # slice-sensitivity profile, written into the (now free) input array
        mid = vol[:, :, 1:-1]
        np.add(out[:, :, :-2], out[:, :, 2:], out=mid)
        mid *= np.float32(wz)
        mid += out[:, :, 1:-1] * np.float32(1 - 2 * wz)
        vol[:, :, 0], vol[:, :, -1] = out[:, :, 0], out[:, :, -1]
        return vol
    return out


def _to_output(ph: CTPhantom, arr: np.ndarray) -> np.ndarray:
    """RAS-ordered array -> the phantom's voxel order."""
    return arr if ph.orientation == "RAS" else np.ascontiguousarray(arr[::-1, ::-1, :])


def lv_masks(ph: CTPhantom) -> tuple[np.ndarray, np.ndarray]:
    """(ED, ES) LV cavity masks on the rendered grid (voxel centres inside), in output voxel order."""
    gr = _Grid(ph)
    ed, es = np.zeros(ph.shape, bool), np.zeros(ph.shape, bool)
    box = _lv_box(ph, gr)
    if box is not None:
        sl, h, rho2 = box
        ed[sl] = _lv_inside(ph, h, rho2, 0.0)
        es[sl] = _lv_inside(ph, h, rho2, 1.0)
    return _to_output(ph, ed), _to_output(ph, es)


def valve_roi(ph: CTPhantom) -> np.ndarray:
    """The aortic-valve region of interest (output voxel order): within annulus + 5 mm of the root
    axis, from 5 mm below the annulus to 6 mm above the coaptation centre."""
    gr = _Grid(ph)
    roi = np.zeros(ph.shape, bool)
    A, ax = np.asarray(ph.annulus), np.asarray(ph.root_axis)
    r = ph.annulus_r + 5
    top = ph.leaflet_h + 6
    b = gr.box(np.minimum(A - 5 * ax, A + top * ax) - r, np.maximum(A - 5 * ax, A + top * ax) + r)
    if b is not None:
        sl, X, Y, Z = b
        dX, dY, dZ = X - np.float32(A[0]), Y - np.float32(A[1]), Z - np.float32(A[2])
        h = dX * np.float32(ax[0]) + dY * np.float32(ax[1]) + dZ * np.float32(ax[2])
        rr = dX * dX + dY * dY + dZ * dZ - h * h
        roi[sl] = (h >= -5) & (h <= top) & (rr <= r * r)
    return _to_output(ph, roi)


def blood_pool_hu(ph: CTPhantom, hu: np.ndarray) -> float:
    """Median HU of a sphere in the LV mid-cavity (inside the cavity all cycle long)."""
    gr = _Grid(ph)
    g = ph.lv(1.0)
    c = ph.apex - np.asarray(ph.axis) * float(g["c"])
    r = max(min(8.0, 0.5 * float(g["R"])), 2.5 * max(ph.spacing))
    b = gr.box(c - r, c + r)
    sl, X, Y, Z = b
    m = (np.square(X - c[0]) + np.square(Y - c[1]) + np.square(Z - c[2])) <= r * r
    return float(np.median(_to_output(ph, hu)[sl][m]))  # the flip is its own inverse


def agatston(hu: np.ndarray, spacing: tuple[float, float, float], roi: np.ndarray | None,
             threshold: float = 130.0) -> float:
    """Agatston score (AU) of a volume whose axis 2 is the slice axis.

    Per axial slice: voxels >= ``threshold`` (inside ``roi`` when given) form 8-connected lesions;
    lesions of at least 1 mm^2 count their area (mm^2) times the density weight of their peak
    (1: 130-199 HU, 2: 200-299, 3: 300-399, 4: >= 400); the sum over slices is rescaled to the
    3 mm slices Agatston was defined on (x slice thickness / 3)."""
    sx, sy, sz = (float(s) for s in spacing)
    mask = hu >= threshold
    if roi is not None:
        mask &= roi
    ks = np.nonzero(mask.any(axis=(0, 1)))[0]
    total = 0.0
    struct = np.ones((3, 3), bool)
    for k in ks:
        lab, n = ndimage.label(mask[:, :, k], structure=struct)
        if n == 0:
            continue
        idx = np.arange(1, n + 1)
        area = ndimage.sum_labels(np.ones_like(lab, dtype=np.float64), lab, idx) * sx * sy
        peak = ndimage.maximum(hu[:, :, k], lab, idx)
        weight = np.select([peak >= 400, peak >= 300, peak >= 200, peak >= 130], [4, 3, 2, 1], 0)
        total += float(np.sum(np.where(area >= 1.0, area * weight, 0.0)))
    return total * sz / 3.0


def render(ph: CTPhantom, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """(hu float32 array in the voxel order the affine describes, affine 4x4, measured labels).

    Labels: lvef (%), edv_ml, esv_ml (voxel counts of the ED/ES cavity on the rendered grid),
    agatston (AU, from the rendered voxels in the valve ROI, threshold max(130, blood pool + 150)),
    aortic_stenosis (0/1 by the sex-specific rule), sex ('M'|'F')."""
    gr = _Grid(ph)
    vol = np.empty(ph.shape, np.float32)
    _torso(ph, gr, vol)
    for a, b, r0, r1 in ph.lung_vessels:
        _paint(vol, gr, _Capsule(a, b, r0, r1), 0.75 * ph.rv_hu, lung_only=True)
    _mediastinum(ph, gr, vol)
    _spine(ph, gr, vol)
    _ribs(ph, gr, vol)
    airways_and_soft_tissue(ph, gr, vol)
    _heart_static(ph, gr, vol)
    _lv_cycle(ph, gr, vol)
    _blobs(gr, ph.spacing, ph.calcium, out=vol)
    for blob in ph.coronary:
        _blobs(gr, ph.spacing, (blob,), out=vol)
    vol = _psf_noise(ph, vol, rng)
    hu = _to_output(ph, vol)

    ed, es = lv_masks(ph)
    vox = float(np.prod(ph.spacing)) / 1000.0
    edv, esv = float(ed.sum()) * vox, float(es.sum()) * vox
    thr = max(130.0, blood_pool_hu(ph, hu) + CALCIUM_ABOVE_BLOOD)
    score = agatston(hu, ph.spacing, valve_roi(ph), threshold=thr)
    labels = dict(lvef=100 * (edv - esv) / edv, edv_ml=edv, esv_ml=esv, agatston=score,
                  aortic_stenosis=as_label(score, ph.sex), sex=ph.sex)
    return hu, ph.affine(), labels


def patient(seed_seq_or_rng, fov: str = "cardiac") -> tuple[np.ndarray, np.ndarray, dict]:
    """Sample and render one patient: ``seed_seq_or_rng`` is a Generator, SeedSequence or int."""
    rng = np.random.default_rng(seed_seq_or_rng)
    return render(sample(rng, fov), rng)
