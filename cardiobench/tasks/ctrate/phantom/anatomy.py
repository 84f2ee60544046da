"""Anatomy of the twin's patients: the chest phantom refitted around a scaled heart, the redrawn upper
abdomen and the pleural fluid as signed distances, the TotalSegmentator-v2 label map, and the grids
(reconstructions) a patient is rendered on."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ....data.twins import ct_phantom as cp
from ....data.twins.ct_phantom import AIR, _Capsule, _ellipse_sd, _field, _Grid, _soft, _t
from .findings import ID, RIB_LEFT, RIB_RIGHT, T10, Design, _prim

# ------------------------------------------------------------------------------ anatomy


def _heart_box(ph: cp.CTPhantom, grow: float) -> tuple[np.ndarray, np.ndarray]:
    d, e2 = np.asarray(ph.axis), np.asarray(ph.septal)
    rows = np.stack([d, e2, np.cross(d, e2)])
    L = (1 + ph.trunc) * ph.c_ed
    r_epi = ph.r_ed + ph.wall
    lo1, hi1 = cp._ell_bbox(np.asarray(ph.base) + d * (L - ph.c_ed), rows,
                            np.array([ph.c_ed + ph.wall_apex, r_epi, r_epi]))
    lo2, hi2 = cp._ell_bbox(ph.rv[0], rows, np.asarray(ph.rv[1]) + 3.5)
    return np.minimum(lo1, lo2) - grow, np.maximum(hi1, hi2) + grow


def _inside_ell(p, c, semi) -> bool:
    return float(np.sum(np.square((np.asarray(p) - np.asarray(c)) / np.asarray(semi)))) <= 1.0


def scale_heart(ph: cp.CTPhantom, k: float, rim: float = 0.0) -> cp.CTPhantom:
    """The chambers scaled by ``k`` about the LV centre (vessels that start in an atrium follow), the
    chest wall moved out and the diaphragm down where the heart (plus ``rim`` mm of pericardial fluid)
    would no longer fit, as :func:`ct_phantom.sample` fits a body around the heart."""
    C = ph.lv_center()
    old_lo, _ = _heart_box(ph, 0.0)

    def m(p):
        return _t(C + k * (np.asarray(p) - C))

    tubes = []
    for kind, a, b, r0, r1 in ph.tubes:
        if kind in ("vein", "blood") and (_inside_ell(a, *ph.ra) or _inside_ell(a, *ph.la)):
            a = m(a)
        tubes.append((kind, a, b, r0, r1))
    ph = dataclasses.replace(
        ph, base=m(ph.base), r_ed=ph.r_ed * k, c_ed=ph.c_ed * k, wall=ph.wall * k, wall_apex=ph.wall_apex * k,
        rv=(m(ph.rv[0]), _t(np.asarray(ph.rv[1]) * k)), ra=(m(ph.ra[0]), _t(np.asarray(ph.ra[1]) * k)),
        la=(m(ph.la[0]), _t(np.asarray(ph.la[1]) * k)), tubes=tuple(tubes))
    lo, hi = _heart_box(ph, ph.epi_fat + rim)
    a_b, b_b, body_y = ph.body
    a_c, b_c, y_c = ph.cavity
    front = hi[1] + 4 - (y_c + b_c)
    if front > 0:
        b_c, y_c, b_b, body_y = b_c + front / 2, y_c + front / 2, b_b + front / 2, body_y + front / 2
    side = -lo[0] + 15 - a_c
    if side > 0:
        a_c, a_b = a_c + side, a_b + side
    drop = max(0.0, old_lo[2] - lo[2] + ph.epi_fat + rim)
    domes = (ph.domes[0] - drop, ph.domes[1] - drop, *ph.domes[2:])
    return dataclasses.replace(ph, body=(a_b, b_b, body_y), cavity=(a_c, b_c, y_c), domes=_t(domes))


def _dome(ph, X, Y):
    z_r, z_l, x_d, y_d, r_d = ph.domes
    d = np.maximum(z_r - (np.square(X - x_d) + np.square(Y - y_d)) / (2 * r_d),
                   z_l - (np.square(X + x_d) + np.square(Y - y_d)) / (2 * r_d))
    return np.maximum(d, z_l - 75)


def _top(ph, X, Y):
    z_ap, x_ap, y_ap, r_ap = ph.lung_top
    return z_ap - (np.square(np.abs(X) - x_ap) + np.square(Y - y_ap)) / (2 * r_ap)


def _liver_side(ph, X, Y):
    return X > -20 - 0.4 * (Y - ph.cavity[2])


def _torso(ph: cp.CTPhantom, gr: _Grid, vol: np.ndarray) -> None:
    """:func:`ct_phantom._torso` with the left upper abdomen as fat (stomach and spleen drawn after)."""
    e = gr.edge
    X, Y = gr.x[:, None], gr.y[None, :]
    a, b, yb = ph.body
    wall = AIR + _soft(_ellipse_sd(X, Y, 0, yb, a, b), e) * (ph.fat_hu - AIR)
    f = ph.fat_mm
    wall += _soft(_ellipse_sd(X, Y, 0, yb, a - f, b - f), e) * (ph.muscle_hu - wall)
    a_c, b_c, y_c = ph.cavity
    cav = _soft(_ellipse_sd(X, Y, 0, y_c, a_c, b_c), e)
    lung = np.broadcast_to(ph.lung_hu + ph.lung_gradient * np.clip(0.5 - 0.5 * (Y - y_c) / b_c, 0, 1), wall.shape)
    z_top, dome = _top(ph, X, Y), _dome(ph, X, Y)
    abd = np.where(_liver_side(ph, X, Y), ph.liver_hu, -70.0).astype(np.float32)
    neck = np.float32(ph.muscle_hu)
    for k, z in enumerate(gr.z):
        z = float(z)
        low = np.clip((dome - z) / e + 0.5, 0, 1)
        high = np.clip((z - z_top) / e + 0.5, 0, 1)
        lf = np.clip(1 - low - high, 0, 1)
        vol[:, :, k] = wall + cav * (lf * lung + low * abd + high * neck - wall)


def _abdomen_prims(ph: cp.CTPhantom):
    """Stomach and spleen under the left dome (clipped 3 mm below it)."""
    z_r, z_l, x_d, y_d, r_d = ph.domes
    a_c, b_c, y_c = ph.cavity
    g = ph.size
    stomach = ("ell", (-0.85 * x_d, y_d + 0.15 * b_c, z_l - 42 * g), (38 * g, 34 * g, 40 * g))
    spleen = ("ell", (-0.78 * a_c, y_c - 0.4 * b_c, z_l - 45 * g), (22 * g, 32 * g, 45 * g))
    return stomach, spleen


def _below_dome_sd(ph, gr, prim):
    f = _field(gr, _prim(prim), 0.0)
    if f is None:
        return None
    sl, sd = f
    X, Y, Z = gr.x[sl[0], None, None], gr.y[None, sl[1], None], gr.z[None, None, sl[2]]
    return sl, np.maximum(sd, Z - (_dome(ph, X, Y) - 3))


def _paint_sd(vol, gr, f, hu):
    if f is None:
        return
    sl, sd = f
    m = _soft(sd, gr.edge)
    v = vol[sl]
    v += m * (np.float32(hu) - v)


def _effusion_sd(ph: cp.CTPhantom, gr: _Grid, side: int, depth: float, taper: float):
    """Signed distance (mm) of the dependent fluid of one side: a posterior layer ``depth`` deep at the
    dome, thinning to nothing ``taper`` mm higher."""
    a_c, b_c, y_c = ph.cavity
    z_dome = ph.domes[0] if side > 0 else ph.domes[1]
    X, Y, Z = gr.x[:, None, None], gr.y[None, :, None], gr.z[None, None, :]
    level = y_c - b_c + depth * np.clip(1 - (Z - z_dome + 20) / taper, 0, 1)
    sd = np.maximum(Y - level, -side * (X - ph.mediastinum[0]))
    return (slice(None), slice(None), slice(None)), sd.astype(np.float32)


# ------------------------------------------------------------------------------ label map


def _union(shape, gr, prims_grow) -> np.ndarray:
    out = np.zeros(shape, bool)
    for prim, grow in prims_grow:
        f = _field(gr, prim, grow)
        if f is not None:
            sl, sd = f
            out[sl] |= sd <= grow
    return out


def label_map(ph: cp.CTPhantom, design: Design, gr: _Grid, clean: np.ndarray) -> np.ndarray:
    """TotalSegmentator-v2 ids on the grid (RAS order), from the geometry and, for the lungs, the
    aerated voxels of the noise-free render before the lung lesions (``clean``)."""
    shape = ph.shape
    X, Y, Z = gr.x[:, None, None], gr.y[None, :, None], gr.z[None, None, :]
    X2, Y2 = gr.x[:, None], gr.y[None, :]
    lab = np.zeros(shape, np.uint8)
    a_c, b_c, y_c = ph.cavity
    cav2 = _ellipse_sd(X2, Y2, 0, y_c, a_c, b_c) <= 0
    dome, top = _dome(ph, X2, Y2), _top(ph, X2, Y2)
    below = Z < dome[:, :, None]
    # abdomen
    lab[cav2[:, :, None] & below & _liver_side(ph, X2, Y2)[:, :, None]] = ID["liver"]
    stomach, spleen = _abdomen_prims(ph)
    for prim, name in ((spleen, "spleen"), (stomach, "stomach")):
        f = _below_dome_sd(ph, gr, prim)
        if f is not None:
            sl, sd = f
            lab[sl][sd <= 0] = ID[name]
    # lungs: the aerated voxels of the thoracic cavity between the domes and the apices, with their vessels
    lung_region = cav2[:, :, None] & ~below & (Z < top[:, :, None])
    vessels = _union(shape, gr, [(_Capsule(a, b, r0, r1), 0.0) for a, b, r0, r1 in ph.lung_vessels])
    fluid = np.zeros(shape, bool)
    for side, depth in ((1, design.effusion[0]), (-1, design.effusion[1])):
        if depth > 0:
            fluid |= _effusion_sd(ph, gr, side, depth, design.effusion[2])[1] <= 0
    lung = lung_region & ((clean < -400) | (vessels & ~fluid))
    B = np.asarray(ph.la[0])  # hilum level
    right = X >= ph.mediastinum[0]
    lower = Z < B[2] + 1.0 * (B[1] - Y)
    lobe = np.where(right, np.where(lower, ID["lung_lower_lobe_right"],
                                    np.where((Z < B[2] - 5) & (Y > B[1]), ID["lung_middle_lobe_right"],
                                             ID["lung_upper_lobe_right"])),
                    np.where(lower, ID["lung_lower_lobe_left"], ID["lung_upper_lobe_left"])).astype(np.uint8)
    lab[lung] = lobe[lung]
    tubes = ph.tubes
    eso = [(_Capsule(a, b, r0, r1), 0.0) for kind, a, b, r0, r1 in tubes if kind == "tissue"]
    lab[_union(shape, gr, eso) & (Z > ph.domes[1] - 15)] = ID["esophagus"]
    airways = [(_Capsule(a, b, r0, r1), 1.5) for kind, a, b, r0, r1 in tubes if kind == "air"]
    lab[_union(shape, gr, airways)] = ID["trachea"]
    if design.hernia:
        lab[_union(shape, gr, [(_prim(p), 0.0) for p in design.hernia])] = ID["stomach"]
    # paraspinal muscle, vertebrae, ribs, sternum
    y_v, r_v, period, phase, _, _ = ph.spine
    back = y_c - b_c - 12
    auto = (np.abs(X2) <= r_v + 8) & (Y2 >= back) & (Y2 <= y_v + 4)
    auto3 = np.broadcast_to(auto[:, :, None], shape)
    lab[auto3 & (X >= 0)] = ID["autochthon_right"]
    lab[auto3 & (X < 0)] = ID["autochthon_left"]
    vb = _ellipse_sd(X2, Y2, 0, y_v, r_v, 0.85 * r_v) <= 0
    y_can = y_v - 0.85 * r_v - 9
    rc = np.sqrt(np.square(X2) + np.square(Y2 - y_can))
    arch = (np.abs(rc - 9.5) <= 2.2) & (Y2 < y_can + 4)
    spin = (np.abs(X2) <= 3.5) & (Y2 >= y_can - 36) & (Y2 <= y_can - 10)
    bone = (vb | arch | spin)[:, :, None]
    j_d = math.floor((ph.domes[1] - phase) / period)
    level = np.clip(T10 + np.floor((gr.z - phase) / period).astype(int) - j_d, 26, 50).astype(np.uint8)
    lab[:] = np.where(bone, level[None, None, :], lab)
    _rib_labels(ph, gr, lab)
    ys = y_c + b_c + 6
    st = (_ellipse_sd(X2, Y2, 0, ys, 14, 6) <= 0)[:, :, None] & (Z >= ph.domes[0] - 10) & (Z <= ph.lung_top[0] - 30)
    lab[st] = ID["sternum"]
    # heart and vessels
    epi, rv, ra, la = cp.heart_primitives(ph)
    f = ph.epi_fat
    lab[_union(shape, gr, [(epi, f), (rv, 3.5 + f), (ra, 3.0), (la, 3.0)])] = ID["heart"]
    veins = [(kind, a, b, r0, r1) for kind, a, b, r0, r1 in tubes if kind == "vein"]
    lab[_union(shape, gr, [(_Capsule(a, b, r0, r1), 0.0) for kind, a, b, r0, r1 in tubes if kind == "blood"])
        & ~(lab == ID["heart"])] = ID["pulmonary_vein"]
    for (kind, a, b, r0, r1), name in zip(veins[:2], ("superior_vena_cava", "inferior_vena_cava")):
        lab[_union(shape, gr, [(_Capsule(a, b, r0, r1), 0.0)]) & (lab != ID["heart"])] = ID[name]
    A, ax = np.asarray(ph.annulus), np.asarray(ph.root_axis)
    aorta = [(_Capsule(a, b, r0, r1), 0.0) for kind, a, b, r0, r1 in tubes if kind == "aorta"]
    aorta += [(_Capsule(_t(A + ax * 4), _t(A + ax * 16), ph.annulus_r * 1.3, ph.annulus_r * 1.2), 0.0),
              (_Capsule(_t(A + ax * 10), _t(A + ax * 26), ph.annulus_r * 1.1, ph.annulus_r * 1.25), 0.0)]
    lab[_union(shape, gr, aorta)] = ID["aorta"]
    return lab


def _rib_labels(ph: cp.CTPhantom, gr: _Grid, lab: np.ndarray) -> None:
    """Ribs (numbered from the apex down, left/right by side) and costal cartilage, as
    :func:`ct_phantom._ribs` draws them."""
    band = cp.rib_band(ph, gr)
    if band is None:
        return
    ii, jj, kk, w, cart, right = band
    inside = kk <= 1
    period, phase = ph.ribs[0], ph.ribs[1]
    m_ref = round((ph.lung_top[0] - 10 - phase) / period)
    number = np.clip(1 + m_ref - np.round(w).astype(int), 1, 12)
    ids = np.where(cart, ID["costal_cartilages"], np.where(right, RIB_RIGHT, RIB_LEFT) + number).astype(np.uint8)
    cur = lab[ii, jj, :]
    lab[ii, jj, :] = np.where(inside, ids, cur)


# ------------------------------------------------------------------------------ sampling


@dataclass(frozen=True)
class Recon:
    """One reconstruction of a scan: matrix, spacing, kernel (in-plane PSF) and noise."""

    kernel: str
    n: int
    spacing: tuple[float, float, float]
    psf_mm: float
    noise_hu: float


def anatomy(rng: np.random.Generator) -> cp.CTPhantom:
    """A patient's anatomy (the chest phantom without its valve and coronary calcium)."""
    ph = cp.sample(rng, "chest")
    return dataclasses.replace(ph, calcium=(), coronary=(), calcium_design=0.0,
                               muscle_hu=float(rng.uniform(48, 58)))


def _contrast(ph: cp.CTPhantom, contrast: bool, rng: np.random.Generator) -> cp.CTPhantom:
    if contrast:
        return ph
    blood = float(rng.uniform(35, 50))
    return dataclasses.replace(ph, blood_hu=blood, rv_hu=blood + float(rng.uniform(-4, 4)),
                               myo_hu=float(rng.uniform(38, 52)), liver_hu=float(rng.uniform(50, 65)))


def _heart_width(ph: cp.CTPhantom) -> float:
    lo, hi = _heart_box(ph, ph.epi_fat + 2)
    sp = 1.5
    n = np.ceil((hi - lo) / sp).astype(int) + 1
    g = dataclasses.replace(ph, spacing=(sp, sp, sp), shape=tuple(int(v) for v in n), fov_center=_t((lo + hi) / 2),
                            orientation="RAS")
    gr = _Grid(g)
    epi, rv, ra, la = cp.heart_primitives(g)
    f = g.epi_fat
    m = _union(g.shape, gr, [(epi, f), (rv, 3.5 + f), (ra, 3.0), (la, 3.0)])
    best = 0
    for k in range(m.shape[2]):
        i = np.nonzero(m[:, :, k].any(axis=1))[0]
        if i.size:
            best = max(best, int(i[-1] - i[0] + 1))
    return best * sp


def recons(rng: np.random.Generator, count: int) -> list[Recon]:
    """``count`` reconstructions: the first a standard kernel, then sharp (lung) and soft kernels."""
    out = []
    z = float(rng.choice([3.0, 4.0, 5.0]))
    for r in range(count):
        kind = ("standard", "sharp", "soft")[r % 3]
        n = int(rng.choice([128, 144, 160]))
        if kind == "standard":
            out.append(Recon(kind, n, (0.0, 0.0, z), float(rng.uniform(1.0, 1.5)), float(rng.uniform(8, 13))))
        elif kind == "sharp":
            out.append(Recon(kind, n, (0.0, 0.0, float(rng.choice([z, 3.0]))), float(rng.uniform(0.4, 0.7)),
                             float(rng.uniform(16, 24))))
        else:
            out.append(Recon(kind, n, (0.0, 0.0, float(rng.choice([4.0, 5.0]))), float(rng.uniform(1.6, 2.2)),
                             float(rng.uniform(5, 9))))
    return out


def on_grid(ph: cp.CTPhantom, rec: Recon, origin, centre_jitter) -> cp.CTPhantom:
    """The phantom reconstructed on ``rec``'s grid: the whole body in-plane, from below the left dome to
    above the apices."""
    a_b, b_b, body_y = ph.body
    extent = 2 * max(a_b, b_b) + 16
    sx = round(extent / rec.n, 4)
    z0, z1 = ph.domes[1] - 35, ph.lung_top[0] + 12
    sz = rec.spacing[2]
    nz = int(math.ceil((z1 - z0) / sz))
    c = (float(centre_jitter[0]), body_y + float(centre_jitter[1]), 0.5 * (z0 + z1))
    return dataclasses.replace(ph, spacing=(sx, sx, sz), shape=(rec.n, rec.n, nz), fov_center=c, origin=_t(origin),
                               psf_mm=rec.psf_mm, noise_hu=rec.noise_hu)
