"""Rendering one patient's scan in HU: the anatomy, calcium nodules integrated over the voxels, noise and
the scanner PSF, then the labels measured on the result; :func:`patient` samples and renders one.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.special import erf

from .body import _mediastinum, _ribs, _spine, _torso, airways_and_soft_tissue
from .heart import _heart_static, _lv_cycle
from .measure import agatston, as_label, blood_pool_hu, lv_masks, valve_roi
from .model import CALCIUM_ABOVE_BLOOD, CTPhantom, _to_output
from .sample import sample
from .shapes import _Capsule, _Grid, _paint


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
