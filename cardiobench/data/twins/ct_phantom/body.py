"""Rasterising the chest around the heart: body wall, lungs, diaphragm, abdomen and neck, mediastinum,
spine and sternum, ribs, airways and the soft-tissue tubes.
"""
from __future__ import annotations

import numpy as np

from .model import AIR, CTPhantom
from .shapes import _Capsule, _ellipse_sd, _Grid, _paint, _soft


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
