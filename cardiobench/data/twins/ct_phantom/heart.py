"""Rasterising the heart: the static chambers, great vessels, aortic root and closed cusps, and the LV
averaged over the cardiac cycle (with the cavity test the LV masks use).
"""
from __future__ import annotations

import math

import numpy as np

from .model import N_PHASES, CTPhantom
from .shapes import _Capsule, _ell_bbox, _Ellipsoid, _field, _frame, _Grid, _paint, _soft, _t


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
