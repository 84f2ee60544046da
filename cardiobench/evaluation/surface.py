"""Per-structure segmentation scores in mm: Dice, HD95, HD, ASSD, NSD and volumes (numpy + scipy only).

Every distance is MONAI 1.6's (``monai.metrics``, spacing given, ``distance_metric="euclidean"``,
``use_subvoxels=False``) and is checked against it in ``tests/test_surface.py``:

* surface (edge) of a mask = the mask minus its binary erosion by the cross (``scipy.ndimage.binary_erosion``
  with its default structure and ``border_value=0``, so voxels on the image border are surface), as
  ``monai.metrics.utils.get_mask_edges``;
* directed distances = for each surface voxel of one mask, the Euclidean distance in mm (voxel index times
  spacing) to the nearest surface voxel of the other, as ``get_surface_distance``;
* HD95 = the larger of the two directed 95th percentiles (linear interpolation, as ``torch.quantile``):
  ``compute_hausdorff_distance(percentile=95, directed=False)``; HD = the same with the maximum;
* ASSD = the mean of both directions' distances pooled (not the mean of the two means):
  ``compute_average_surface_distance(symmetric=True)``;
* NSD at tolerance tau = (surface voxels of either mask within tau of the other surface) / (all surface
  voxels of both): ``compute_surface_dice(class_thresholds=[tau], use_subvoxels=False)``.

Differences from MONAI, on empty structures only (MONAI warns there): both empty gives Dice 1, distances 0
and NSD 1 (MONAI: all NaN); exactly one empty gives Dice 0, distances ``inf`` and NSD 0 (MONAI: HD and ASSD
``inf``, NSD 0, but HD95 NaN, the quantile of infinities, and Dice NaN when the truth is the empty one).
Nothing is ever NaN here. Elsewhere values agree to MONAI's float32 rounding (ours are float64).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class StructureScores:
    """Scores of one structure; distances in mm, volumes in mL, counts in voxels."""

    dice: float
    hd95_mm: float
    hd_mm: float
    assd_mm: float
    nsd: float
    vol_true_ml: float
    vol_pred_ml: float
    n_true: int
    n_pred: int
    n_inter: int

    def as_dict(self) -> dict:
        """Field name -> value (plain Python floats and ints; ``inf`` when exactly one mask is empty)."""
        return asdict(self)


def structure_scores(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float],
                     nsd_tolerance_mm: float = 2.0) -> StructureScores:
    """Dice, HD95, HD, ASSD, NSD (MONAI 1.6's definitions, see the module docstring) and volumes of one structure.

    ``pred`` and ``truth`` are masks of the same 2D or 3D shape (nonzero = inside); ``spacing`` is the voxel
    size in mm along each axis; NSD (boundary Dice) counts surface voxels within ``nsd_tolerance_mm``.
    Dice = 2|P & T| / (|P| + |T|) on voxels; volume (mL) = voxels * prod(spacing) / 1000.
    """
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    sp = _check(pred.shape, truth.shape, spacing, nsd_tolerance_mm)
    n_pred, n_true = int(np.count_nonzero(pred)), int(np.count_nonzero(truth))
    voxel_ml = float(np.prod(sp)) / 1000.0
    volumes = dict(vol_true_ml=n_true * voxel_ml, vol_pred_ml=n_pred * voxel_ml, n_true=n_true, n_pred=n_pred)
    if n_pred == 0 or n_true == 0:
        # Explicit values where MONAI gives NaN or inf with warnings (see the module docstring).
        both = n_pred == n_true
        d = 0.0 if both else math.inf
        return StructureScores(dice=float(both), hd95_mm=d, hd_mm=d, assd_mm=d, nsd=float(both), n_inter=0,
                               **volumes)

    # Nothing outside the union's bounding box is foreground, and the erosion treats outside the array as
    # background (border_value=0), so cropping with no margin leaves every surface voxel as it was
    # (MONAI's margin of 1 only adds background); distances are translation invariant.
    box = _bounding_box(pred | truth)
    p, t = pred[box], truth[box]
    n_inter = int(np.count_nonzero(p & t))
    edge_p, edge_t = p & ~ndimage.binary_erosion(p), t & ~ndimage.binary_erosion(t)
    d_pt = _directed_distances(edge_p, edge_t, sp)
    d_tp = _directed_distances(edge_t, edge_p, sp)

    hd95 = max(float(np.percentile(d_pt, 95)), float(np.percentile(d_tp, 95)))  # linear, as torch.quantile
    hd = max(float(d_pt.max()), float(d_tp.max()))
    assd = (float(d_pt.sum()) + float(d_tp.sum())) / (d_pt.size + d_tp.size)
    # MONAI compares float32 distances with the tolerance cast to float32: doing the same makes the counts
    # equal, and a distance mathematically equal to tau but rounded just above it in float64 counts as within.
    tol = np.float32(nsd_tolerance_mm)
    within = np.count_nonzero(d_pt.astype(np.float32) <= tol) + np.count_nonzero(d_tp.astype(np.float32) <= tol)
    return StructureScores(dice=2.0 * n_inter / (n_pred + n_true), hd95_mm=hd95, hd_mm=hd, assd_mm=assd,
                           nsd=float(within) / (d_pt.size + d_tp.size), n_inter=n_inter, **volumes)


def label_scores(pred_labels: np.ndarray, true_labels: np.ndarray, spacing: Sequence[float],
                 labels: Mapping[str, int], nsd_tolerance_mm: float = 2.0) -> dict[str, StructureScores]:
    """:func:`structure_scores` of each structure of two label maps, e.g. ``labels={"RV": 1, "MYO": 2, "LV": 3}``.

    Returns structure name -> scores, in the order of ``labels``.
    """
    pred_labels, true_labels = np.asarray(pred_labels), np.asarray(true_labels)
    _check(pred_labels.shape, true_labels.shape, spacing, nsd_tolerance_mm)
    return {name: structure_scores(pred_labels == value, true_labels == value, spacing, nsd_tolerance_mm)
            for name, value in labels.items()}


def _check(pred_shape: tuple, truth_shape: tuple, spacing: Sequence[float], tolerance: float) -> np.ndarray:
    if pred_shape != truth_shape:
        raise ValueError(f"pred and truth have different shapes: {pred_shape} and {truth_shape}")
    if len(pred_shape) not in (2, 3):
        raise ValueError(f"masks must be 2D or 3D, got shape {pred_shape}")
    sp = np.asarray(spacing, dtype=np.float64)
    if sp.shape != (len(pred_shape),) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"spacing must give one positive size (mm) per axis of {pred_shape}, got {spacing!r}")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"nsd_tolerance_mm must be finite and >= 0, got {tolerance!r}")
    return sp


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Slices of the smallest box holding every nonzero voxel of a non-empty mask."""
    # Through the flat indices: one contiguous pass, and structures are a small part of the volume
    # (numpy's any() along non-contiguous axes is several times slower on an ACDC-sized volume).
    index = np.unravel_index(np.flatnonzero(mask), mask.shape)
    return tuple(slice(int(i.min()), int(i.max()) + 1) for i in index)


def _directed_distances(src: np.ndarray, dst: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) from each voxel of surface ``src`` to the nearest voxel of surface ``dst`` (both non-empty).

    The nearest-neighbour distance between the voxels' physical coordinates (index * spacing) is exactly
    what a Euclidean distance transform of ``dst`` with ``sampling=spacing`` holds at ``src`` (and what MONAI
    computes, with a KD-tree too); on the sparse surfaces of cardiac structures the tree is about twice as
    fast as the transform of the cropped box, and does not grow with the box (a far false island).
    """
    away = src & ~dst  # a voxel on both surfaces is at distance 0: only the others are looked up
    d = np.zeros(int(np.count_nonzero(src)))
    if away.any():
        # Built for a single batched query: the sliding-midpoint tree (balanced_tree=False) with larger
        # leaves builds faster and answers as exactly (it only changes the search order).
        tree = cKDTree(np.argwhere(dst) * spacing, leafsize=32, balanced_tree=False, compact_nodes=False)
        q = tree.query(np.argwhere(away) * spacing)[0]
        d[:q.size] = q
    return d
