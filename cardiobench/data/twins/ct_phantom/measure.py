"""Labels measured from the phantom and its rendered voxels: ED/ES LV cavity masks, the aortic-valve
region of interest, the blood-pool HU, the Agatston score and the aortic-stenosis rule.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .heart import _lv_box, _lv_inside
from .model import AS_THRESHOLD, CTPhantom, _to_output
from .shapes import _Grid


def as_label(score: float, sex: str) -> int:
    """Severe aortic stenosis by the sex-specific Agatston cut-off (>= 2000 men, >= 1300 women)."""
    return int(score >= AS_THRESHOLD[sex])


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
