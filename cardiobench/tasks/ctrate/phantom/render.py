"""Rendering: the noise-free volume, the lesions, calcium and metal painted over it, PSF and noise;
and the regions the lesion measurements read."""
from __future__ import annotations

import numpy as np

from ....data.twins import ct_phantom as cp
from ....data.twins.ct_phantom import AIR, _Capsule, _field, _Grid, _paint
from .anatomy import _abdomen_prims, _below_dome_sd, _effusion_sd, _paint_sd, _torso, _union, label_map
from .findings import Design, _prim

# ------------------------------------------------------------------------------ rendering


def _render_clean(ph: cp.CTPhantom, design: Design, gr: _Grid) -> np.ndarray:
    """The noise-free volume (RAS order) before the lung lesions, calcium and metal."""
    vol = np.empty(ph.shape, np.float32)
    _torso(ph, gr, vol)
    stomach, spleen = _abdomen_prims(ph)
    _paint_sd(vol, gr, _below_dome_sd(ph, gr, spleen), ph.liver_hu * 0.9 if design.contrast else 48.0)
    f = _below_dome_sd(ph, gr, stomach)
    _paint_sd(vol, gr, f, 40.0)
    if f is not None:  # content (fluid) with an air cap over a level 1/3 down from the top
        sl, sd = f
        _paint_sd(vol, gr, (sl, sd + 3.0), 12.0)
        top = stomach[1][2] + stomach[2][2]
        Z = gr.z[None, None, sl[2]]
        _paint_sd(vol, gr, (sl, np.maximum(sd + 3.0, (top - 0.3 * stomach[2][2]) - Z)), AIR)
    for side, depth in ((1, design.effusion[0]), (-1, design.effusion[1])):
        if depth > 0:
            sl, sd = _effusion_sd(ph, gr, side, depth, design.effusion[2])
            _paint(vol, gr, None, 8.0, lung_only=True, field=(sl, sd))
    for a, b, r0, r1 in ph.lung_vessels:
        _paint(vol, gr, _Capsule(a, b, r0, r1), 0.75 * ph.rv_hu, lung_only=True)
    cp._mediastinum(ph, gr, vol)
    cp.airways_and_soft_tissue(ph, gr, vol)
    for p in design.hernia:  # wall, fluid, air above the level
        _paint(vol, gr, _prim(p), 40.0, grow=2.0)
    for p in design.hernia:
        _paint(vol, gr, _prim(p), 15.0)
    for p in design.hernia:
        fld = _field(gr, _prim(p), 0.0)
        if fld is not None:
            sl, sd = fld
            _paint_sd(vol, gr, (sl, np.maximum(sd + 1.0, design.hernia_level - gr.z[None, None, sl[2]])), AIR)
    for x, y, z, r in design.nodes:
        _paint(vol, gr, _Capsule((x, y, z - 0.3 * r), (x, y, z + 0.3 * r), r, r), 40.0)
    cp._spine(ph, gr, vol)
    cp._ribs(ph, gr, vol)
    if design.pericardial_mm > 0:
        epi, rv, _, _ = cp.heart_primitives(ph)
        t = design.pericardial_mm
        _paint(vol, gr, epi, 10.0, grow=ph.epi_fat + t)
        _paint(vol, gr, rv, 10.0, grow=3.5 + ph.epi_fat + t)
    cp._heart_static(ph, gr, vol)
    cp._lv_cycle(ph, gr, vol)
    return vol


def _paint_lesions(ph: cp.CTPhantom, design: Design, gr: _Grid, vol: np.ndarray) -> None:
    for les in design.lesions:
        for p, hu in les.paint:
            _paint(vol, gr, _prim(p), hu, lung_only=les.lung_only)
    cp._blobs(gr, ph.spacing, list(design.aortic) + list(design.coronary), out=vol)
    for p, hu in design.metal:
        _paint(vol, gr, _prim(p), hu)


def render(ph: cp.CTPhantom, design: Design, rng: np.random.Generator,
           clean: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HU as whole numbers in [-1024, 3071], int16; label map uint8; affine), in the voxel order the
    affine describes. ``clean``: the (volume, label map) of :func:`_render_clean` on this grid, if made."""
    gr = _Grid(ph)
    if clean is None:
        vol = _render_clean(ph, design, gr)
        lab = label_map(ph, design, gr, vol)
    else:
        vol, lab = clean[0].copy(), clean[1]
    _paint_lesions(ph, design, gr, vol)
    vol = cp._psf_noise(ph, vol, rng)
    hu = np.clip(np.round(vol), -1024, 3071).astype(np.int16)
    return cp._to_output(ph, hu), cp._to_output(ph, lab), ph.affine()


def regions(ph: cp.CTPhantom, design: Design) -> dict[str, list[np.ndarray]]:
    """Per lesion kind, the boolean region of each lesion (output voxel order) its measurement reads."""
    gr = _Grid(ph)
    out: dict[str, list[np.ndarray]] = {}
    for les in design.lesions:
        prims = les.region if les.region is not None else tuple(p for p, _ in les.paint)
        m = _union(ph.shape, gr, [(_prim(p), 0.0) for p in prims])
        out.setdefault(les.kind, []).append(cp._to_output(ph, m))
        if les.kind == "mosaic_low":
            out.setdefault("mosaic_ref", []).append(les.ref_hu)
    for x, y, z, r in design.nodes:
        m = _union(ph.shape, gr, [(_Capsule((x, y, z - 0.3 * r), (x, y, z + 0.3 * r), r, r), 0.0)])
        out.setdefault("node", []).append(cp._to_output(ph, m))
    return out
