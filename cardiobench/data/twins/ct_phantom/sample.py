"""Drawing one patient: the LV design (EF, EDV, shape, shortening), the torso fitted around the heart,
lungs, vessels and airways, the scan's field of view and grid, aortic-valve and coronary calcium.
"""
from __future__ import annotations

import math

import numpy as np

from .. import portable_math as pmath
from .model import CALCIUM_ABOVE_BLOOD, CALCIUM_GAIN, FOVS, ORIENTATIONS, CTPhantom
from .shapes import _ell_bbox, _frame, _t, _unit


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
