"""The measurement rules: every quantity of :data:`findings.RULES` from the saved volume, its label map
and the lesion regions, and the labels they give."""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .findings import CALC_HU, FLUID_HU, ID, LAA_HU, LUNG_IDS, METAL_HU, PERI_SHELL_MM, PLEURAL_NEAR_LUNG_MM, RULES

# ------------------------------------------------------------------------------ measurement rules


def _mean3(hu: np.ndarray) -> np.ndarray:
    return ndimage.uniform_filter(hu.astype(np.float32), size=(3, 3, 1), mode="nearest")


def ctr(lab: np.ndarray, spacing) -> float:
    """Cardiothoracic ratio: widest left-right extent (axis 0) of the heart on an axial slice over the
    widest left-right extent of the lungs on any axial slice."""
    def width(m):
        best = 0
        for k in np.nonzero(m.any(axis=(0, 1)))[0]:
            i = np.nonzero(m[:, :, k].any(axis=1))[0]
            best = max(best, int(i[-1] - i[0] + 1))
        return best * float(spacing[0])
    thorax = width(np.isin(lab, LUNG_IDS))
    return width(lab == ID["heart"]) / thorax if thorax else float("nan")


def laa_fraction(hu: np.ndarray, lab: np.ndarray, threshold: float = LAA_HU) -> float:
    lung = np.isin(lab, LUNG_IDS)
    return float(np.mean(hu[lung] < threshold)) if lung.any() else float("nan")


def calcium_threshold(hu: np.ndarray, lab: np.ndarray) -> float:
    """130 HU without contrast; aorta median + 150 HU when the aorta is enhanced (median >= 100 HU)."""
    blood = float(np.median(hu[lab == ID["aorta"]]))
    return CALC_HU if blood < 100 else blood + 150.0


def calcified_foci(hu: np.ndarray, roi: np.ndarray, threshold: float) -> int:
    """Connected foci (26-connected, at least 2 voxels) of HU >= threshold inside ``roi``; a focus
    reaching METAL_HU is metal (a pacemaker lead), not calcium."""
    if not roi.any():
        return 0
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(roi))
    hu, roi = hu[box], roi[box]
    lab, n = ndimage.label((hu >= threshold) & roi, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return 0
    idx = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(np.ones(hu.shape, np.int32), lab, idx)
    peak = ndimage.maximum(hu, lab, idx)
    return int(np.sum((sizes >= 2) & (peak < METAL_HU)))


def fluid_voxels(hu: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Unlabelled voxels of fluid density (3x3 in-plane mean in FLUID_HU), opened by a 3x3 in-plane square."""
    m = _mean3(hu)
    f = (m >= FLUID_HU[0]) & (m <= FLUID_HU[1]) & (lab == 0)
    return ndimage.binary_opening(f, structure=np.ones((3, 3, 1), bool))


def within(target: np.ndarray, query: np.ndarray, mm: float, spacing) -> np.ndarray:
    """The ``query`` voxels within ``mm`` (Euclidean, voxel centres) of a ``target`` voxel."""
    from scipy.spatial import cKDTree

    out = np.zeros(query.shape, bool)
    if not query.any() or not target.any():
        return out
    surface = target & ~ndimage.binary_erosion(target)  # the nearest target voxel of an outside one is on it
    sp = np.asarray(spacing, float)
    tree = cKDTree(np.argwhere(surface) * sp)
    qi = np.argwhere(query & ~target)
    d, _ = tree.query(qi * sp, distance_upper_bound=mm + 1e-6)
    hit = qi[np.isfinite(d)]
    out[tuple(hit.T)] = True
    out |= query & target
    return out


def effusions_ml(hu: np.ndarray, lab: np.ndarray, spacing) -> tuple[float, float]:
    """(pericardial, pleural) fluid volumes in mL: fluid voxels within PERI_SHELL_MM of the heart, and
    the other fluid collections (26-connected) that come within PLEURAL_NEAR_LUNG_MM of the lungs."""
    fl = fluid_voxels(hu, lab)
    vox = float(np.prod(spacing)) / 1000
    peri = within(lab == ID["heart"], fl, PERI_SHELL_MM, spacing)
    rest = fl & ~peri
    near = within(np.isin(lab, LUNG_IDS), rest, PLEURAL_NEAR_LUNG_MM, spacing)
    comp, n = ndimage.label(rest, structure=np.ones((3, 3, 3), bool))
    keep = np.unique(comp[near])
    pleural = np.isin(comp, keep[keep > 0]) if n else rest
    return float(peri.sum()) * vox, float(pleural.sum()) * vox


def hernia_ml(lab: np.ndarray, spacing) -> float:
    """Stomach volume above the top slice of the liver (mL)."""
    liver = np.nonzero((lab == ID["liver"]).any(axis=(0, 1)))[0]
    if liver.size == 0:
        return 0.0
    return float((lab[:, :, liver[-1] + 1:] == ID["stomach"]).sum()) * float(np.prod(spacing)) / 1000


def metal_mm3(hu: np.ndarray, spacing) -> float:
    return float((hu >= METAL_HU).sum()) * float(np.prod(spacing))


def _slice_diameter(m: np.ndarray, spacing) -> float:
    if not m.any():
        return 0.0
    area = float(m.sum(axis=(0, 1)).max()) * spacing[0] * spacing[1]
    return 2 * math.sqrt(area / math.pi)


def measure(hu: np.ndarray, lab: np.ndarray, spacing, reg: dict[str, list[np.ndarray]]) -> dict[str, float]:
    """Every quantity of :data:`RULES` from the saved volume (HU), its label map and the lesion regions."""
    spacing = tuple(float(s) for s in spacing)
    vox = float(np.prod(spacing)) / 1000  # mL
    q: dict[str, float] = {}
    q["metal_mm3"] = metal_mm3(hu, spacing)
    thr = calcium_threshold(hu, lab)
    q["calcium_threshold"] = thr
    q["aortic_foci"] = calcified_foci(hu, lab == ID["aorta"], thr)
    q["coronary_foci"] = calcified_foci(hu, lab == ID["heart"], thr)
    q["ctr"] = ctr(lab, spacing)
    q["pericardial_ml"], q["pleural_ml"] = effusions_ml(hu, lab, spacing)
    q["hernia_ml"] = hernia_ml(lab, spacing)
    q["laa950"] = laa_fraction(hu, lab)

    def vol(kind, cond):
        return sum(float((r & cond).sum()) * vox for r in reg.get(kind, []))
    q["atelectasis_ml"] = vol("atelectasis", hu > -300)
    q["nodule_mm"] = max([2 * math.pow(3 * float((r & (hu > -300)).sum()) * vox * 1000 / (4 * math.pi), 1 / 3)
                          for r in reg.get("nodule", [])], default=0.0)
    q["ggo_ml"] = vol("ggo", (hu > -800) & (hu < -250))
    q["consolidation_ml"] = vol("consolidation", hu > -150)
    q["fibrosis_ml"] = vol("fibrosis", hu > -500)
    q["peribronchial_ml"] = vol("peribronchial", hu > -500)
    q["bronchiectasis_ml"] = vol("bronchiectasis", hu < -900)
    q["septal_ml"] = vol("septal", hu > -700)
    q["mosaic_ml"] = 0.0
    if reg.get("mosaic_low"):
        m3 = _mean3(hu)
        q["mosaic_ml"] = sum(float((r & (m3 < ref)).sum()) * vox
                             for r, ref in zip(reg["mosaic_low"], reg["mosaic_ref"]))
    q["node_mm"] = max([_slice_diameter(r & (hu > -5), spacing) for r in reg.get("node", [])], default=0.0)
    return q


def labels_from(q: dict[str, float]) -> dict[str, int]:
    return {label: int(q[key] >= cut) for label, (key, cut) in RULES.items()}
