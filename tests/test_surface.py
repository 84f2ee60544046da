"""Segmentation scores in mm (cardiobench.evaluation.surface) against MONAI 1.6 and against known answers."""
from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from monai.metrics import (compute_average_surface_distance, compute_dice, compute_hausdorff_distance,
                           compute_surface_dice)
from monai.networks.utils import one_hot
from scipy import ndimage

from cardiobench.evaluation.surface import StructureScores, label_scores, structure_scores

from .test_torch_free import NO_TORCH

TOL_MM = 1e-3
ACDC = {"RV": 1, "MYO": 2, "LV": 3}


def _monai(y_pred: torch.Tensor, y: torch.Tensor, spacing, tau: float) -> np.ndarray:
    """MONAI's Dice, HD95, HD, ASSD, NSD of one-hot [B, C, ...] tensors (background channel 0 left out):
    rows of the 5 metrics, a column per foreground class."""
    spacing = tuple(float(s) for s in spacing)
    n = y.shape[1] - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's own deprecation warning inside get_mask_edges
        rows = [compute_dice(y_pred, y, include_background=False),
                compute_hausdorff_distance(y_pred, y, percentile=95, directed=False, distance_metric="euclidean",
                                           spacing=spacing),
                compute_hausdorff_distance(y_pred, y, directed=False, distance_metric="euclidean", spacing=spacing),
                compute_average_surface_distance(y_pred, y, symmetric=True, spacing=spacing),
                compute_surface_dice(y_pred, y, class_thresholds=[tau] * n, spacing=spacing, use_subvoxels=False)]
    return np.stack([r[0].numpy().astype(np.float64) for r in rows])


def monai_scores(pred: np.ndarray, truth: np.ndarray, spacing, tau: float = 2.0) -> dict[str, float]:
    def onehot(m):
        return torch.as_tensor(np.stack([~m, m])[None], dtype=torch.float32)

    dice, hd95, hd, assd, nsd = _monai(onehot(pred), onehot(truth), spacing, tau)[:, 0]
    return dict(dice=dice, hd95_mm=hd95, hd_mm=hd, assd_mm=assd, nsd=nsd)


def _grid(shape, spacing):
    """Physical coordinates (mm) of every voxel, shape (*shape, ndim)."""
    return np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij"), axis=-1)


def ellipsoid(shape, spacing, center_mm, radii_mm):
    return (((_grid(shape, spacing) - center_mm) / radii_mm) ** 2).sum(-1) <= 1


def ring(shape, spacing, center_mm, r_in, r_out):
    r = np.linalg.norm(_grid(shape, spacing) - center_mm, axis=-1)
    return (r >= r_in) & (r < r_out)


def smooth_blob(rng, shape, sigma, level):
    """A smooth random blob: several components, holes and cavities."""
    return ndimage.gaussian_filter(rng.normal(size=shape), sigma) > level


def _cases():
    rng = np.random.default_rng(0)
    cases = []

    sp = (1.37, 1.37, 8.0)
    shape = (48, 52, 12)
    t = ellipsoid(shape, sp, (30, 35, 45), (20, 16, 30))
    p = ellipsoid(shape, sp, (32, 33, 40), (22, 15, 34))
    cases.append(("ellipsoids-3d-aniso", p, t, sp, 2.0))
    cases.append(("ellipsoids-3d-aniso-tau5", p, t, sp, 5.0))
    cases.append(("ellipsoids-3d-aniso-tau0", p, t, sp, 0.0))

    sp2 = (0.9, 1.3)
    shape2 = (90, 80)
    t = ring(shape2, sp2, (40, 50), 18, 25)
    p = ring(shape2, sp2, (41, 49), 17, 27) | ring(shape2, sp2, (41, 49), 5, 7)
    cases.append(("rings-2d", p, t, sp2, 2.0))

    t = smooth_blob(rng, (40, 44, 10), (3, 3, 1), 0.02)
    p = ndimage.binary_dilation(t, iterations=1) & ~smooth_blob(rng, t.shape, (2, 2, 1), 0.15)
    cases.append(("blobs-holes-3d", p, t, (1.5, 1.5, 6.0), 2.0))

    ball = ellipsoid((30, 30, 30), (1.0, 1.0, 1.0), (15, 15, 15), (12, 12, 12))
    shell = ball & ~ellipsoid((30, 30, 30), (1.0, 1.0, 1.0), (15, 15, 15), (6, 6, 6))  # a cavity inside
    cases.append(("shell-vs-ball-iso", shell, ball, (1.0, 1.0, 1.0), 2.0))  # integer distances: ties at tau

    t = rng.random((24, 20, 6)) < 0.35
    p = rng.random((24, 20, 6)) < 0.35
    cases.append(("random-3d", p, t, (1.37, 1.37, 8.0), 2.0))
    t = rng.random((50, 40)) < 0.5
    p = t ^ (rng.random((50, 40)) < 0.1)
    cases.append(("random-2d", p, t, (1.2, 0.7), 1.0))

    # touching the image border (MONAI pads there, we rely on the erosion's border_value=0)
    t = np.zeros((20, 22, 5), bool)
    t[:12, 5:, 1:] = True
    p = np.zeros_like(t)
    p[2:14, 7:, :] = True
    cases.append(("border-3d", p, t, (2.0, 1.5, 5.0), 2.0))

    # disjoint, far apart
    t = np.zeros((60, 30), bool)
    t[5:12, 5:15] = True
    p = np.zeros_like(t)
    p[45:50, 18:24] = True
    cases.append(("disjoint-2d", p, t, (1.1, 0.8), 2.0))
    return cases


CASES = _cases()


@pytest.mark.parametrize("name,pred,truth,spacing,tau", CASES, ids=[c[0] for c in CASES])
def test_equals_monai(name, pred, truth, spacing, tau):
    ours = structure_scores(pred, truth, spacing, nsd_tolerance_mm=tau)
    ref = monai_scores(pred, truth, spacing, tau)
    for key in ("hd95_mm", "hd_mm", "assd_mm"):
        assert getattr(ours, key) == pytest.approx(ref[key], abs=TOL_MM), key
    assert ours.nsd == pytest.approx(ref["nsd"], abs=1e-6)
    assert ours.dice == pytest.approx(ref["dice"], abs=1e-6)


def test_int_masks_and_list_spacing_same_as_bool():
    _, p, t, sp, tau = CASES[0]
    assert structure_scores(p.astype(np.uint8), t.astype(np.int64), list(sp), tau) == structure_scores(p, t, sp, tau)


def _spheres():
    """Concentric digital balls (radius 20 mm and 26 mm) on an anisotropic grid, 60 mm clear space beside them."""
    sp = (1.25, 1.25, 2.5)
    shape = (110, 48, 26)
    center = np.array([36, 24, 13]) * sp
    r = np.linalg.norm(_grid(shape, sp) - center, axis=-1)
    return sp, center, r <= 20.0, r <= 26.0


def test_concentric_spheres_known_answers():
    sp, _, truth, pred = _spheres()
    s = structure_scores(pred, truth, sp)
    n_t, n_p = int(truth.sum()), int(pred.sum())
    assert (s.n_true, s.n_pred, s.n_inter) == (n_t, n_p, n_t)  # the small ball lies inside the large one
    assert s.dice == 2 * n_t / (n_t + n_p)
    voxel_ml = 1.25 * 1.25 * 2.5 / 1000
    assert s.vol_true_ml == pytest.approx(n_t * voxel_ml, rel=1e-12)
    assert s.vol_pred_ml == pytest.approx(n_p * voxel_ml, rel=1e-12)
    ref = monai_scores(pred, truth, sp)
    assert s.hd_mm == pytest.approx(ref["hd_mm"], abs=TOL_MM)
    assert s.hd95_mm == pytest.approx(ref["hd95_mm"], abs=TOL_MM)
    assert s.assd_mm == pytest.approx(ref["assd_mm"], abs=TOL_MM)
    gap = 26.0 - 20.0
    # digital spheres: each surface voxel lies within one voxel (largest spacing) of the true sphere
    assert abs(s.hd_mm - gap) <= max(sp)
    assert gap - max(sp) <= s.assd_mm <= s.hd95_mm <= s.hd_mm
    assert s.nsd == 0.0  # every surface voxel is more than 2 mm from the other surface ...
    assert structure_scores(pred, truth, sp, nsd_tolerance_mm=s.hd_mm).nsd == 1.0  # ... and all within the HD


def test_far_false_island_sets_hd_not_hd95():
    sp, center, truth, pred = _spheres()
    clean = structure_scores(pred, truth, sp)
    island = np.zeros_like(pred)
    i0 = 36 + 64  # 64 voxels * 1.25 mm = 80 mm from the centre, 60 mm beyond the truth ball along axis 0
    island[i0 - 1:i0 + 2, 23:26, 13] = True  # a 3 x 3 voxel blob
    s = structure_scores(pred | island, truth, sp)
    # Farthest island voxel from the truth: |v - c| - 20 mm is a lower bound (the truth ball has radius 20)
    # and the truth's digital surface is within one voxel of its sphere.
    far = np.linalg.norm(np.array([i0 + 1, 23, 13]) * sp - center) - 20.0
    assert far <= s.hd_mm <= far + max(sp)
    assert s.hd_mm > 60.0 > 5 * clean.hd_mm
    ref = monai_scores(pred | island, truth, sp)
    assert s.hd_mm == pytest.approx(ref["hd_mm"], abs=TOL_MM)
    assert s.hd95_mm == pytest.approx(ref["hd95_mm"], abs=TOL_MM)  # 9 voxels of thousands: HD95 barely moves
    assert s.hd95_mm < clean.hd_mm + 1.0
    assert s.assd_mm == pytest.approx(ref["assd_mm"], abs=TOL_MM)
    assert (s.n_pred, s.n_inter) == (clean.n_pred + 9, clean.n_inter)


def test_empty_structures_explicit():
    sp, _, truth, _ = _spheres()
    empty = np.zeros_like(truth)
    voxel_ml = 1.25 * 1.25 * 2.5 / 1000
    missing = structure_scores(empty, truth, sp)
    assert missing == StructureScores(dice=0.0, hd95_mm=math.inf, hd_mm=math.inf, assd_mm=math.inf, nsd=0.0,
                                      vol_true_ml=int(truth.sum()) * voxel_ml, vol_pred_ml=0.0,
                                      n_true=int(truth.sum()), n_pred=0, n_inter=0)
    extra = structure_scores(truth, empty, sp)
    assert (extra.dice, extra.hd95_mm, extra.hd_mm, extra.assd_mm, extra.nsd) == (0.0, math.inf, math.inf,
                                                                                   math.inf, 0.0)
    both = structure_scores(empty, empty, sp)
    assert both.as_dict() == dict(dice=1.0, hd95_mm=0.0, hd_mm=0.0, assd_mm=0.0, nsd=1.0, vol_true_ml=0.0,
                                  vol_pred_ml=0.0, n_true=0, n_pred=0, n_inter=0)
    # The documented differences: MONAI gives NaN when both are empty; when one is, inf HD and ASSD, NSD 0,
    # but NaN HD95 (quantile of infinities) and NaN Dice when the truth is the empty one.
    ref_both = monai_scores(empty, empty, sp)
    assert all(math.isnan(ref_both[k]) for k in ("dice", "hd95_mm", "hd_mm", "assd_mm", "nsd"))
    ref_missing, ref_extra = monai_scores(empty, truth, sp), monai_scores(truth, empty, sp)
    assert [ref_missing[k] for k in ("dice", "hd_mm", "assd_mm", "nsd")] == [0.0, math.inf, math.inf, 0.0]
    assert math.isnan(ref_missing["hd95_mm"]) and math.isnan(ref_extra["hd95_mm"]) and math.isnan(ref_extra["dice"])


def _label_map(rng, shape=(70, 80, 4)):
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(float)
    lab = np.zeros(shape, np.uint8)
    for z in range(shape[2]):
        cy, cx = 35 + rng.normal(0, 1), 45 + rng.normal(0, 1)
        r = np.hypot(yy - cy, xx - cx)
        f = 1 - 0.15 * z
        lab[..., z][(np.hypot((yy - cy) / 1.2, xx - (cx - 18 * f)) < 18 * f) & (r >= 16 * f + 1)] = 1
        lab[..., z][(r >= 11 * f) & (r < 16 * f)] = 2
        lab[..., z][r < 11 * f] = 3
    return lab


def test_label_scores_equals_per_structure_and_monai():
    rng = np.random.default_rng(3)
    truth = _label_map(rng)
    pred = _label_map(rng)  # other centres per slice
    pred[60:63, 5:8, 2] = 3  # a false LV island
    sp = (1.56, 1.56, 10.0)
    scores = label_scores(pred, truth, sp, ACDC)
    assert list(scores) == ["RV", "MYO", "LV"]
    for name, value in ACDC.items():
        assert scores[name] == structure_scores(pred == value, truth == value, sp)

    def onehot(lab):
        return one_hot(torch.as_tensor(lab.astype(np.int64))[None, None], num_classes=4)

    ref = _monai(onehot(pred), onehot(truth), sp, 2.0)  # channels 1, 2, 3 = RV, MYO, LV
    for j, name in enumerate(ACDC):
        s = scores[name]
        np.testing.assert_allclose([s.dice, s.hd95_mm, s.hd_mm, s.assd_mm, s.nsd], ref[:, j], rtol=0, atol=TOL_MM)


def test_bad_inputs():
    m = np.ones((4, 5), bool)
    with pytest.raises(ValueError, match="shapes"):
        structure_scores(m, m[:, :4], (1, 1))
    with pytest.raises(ValueError, match="spacing"):
        structure_scores(m, m, (1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        structure_scores(m, m, (1, 0))
    with pytest.raises(ValueError, match="2D or 3D"):
        structure_scores(m[0], m[0], (1,))
    with pytest.raises(ValueError, match="tolerance"):
        structure_scores(m, m, (1, 1), nsd_tolerance_mm=-1)


def test_imports_no_torch():
    code = NO_TORCH + ("import numpy as np\n"
                       "from cardiobench.evaluation.surface import structure_scores\n"
                       "m = np.zeros((8, 9, 3), bool); m[2:6, 3:7, 1:] = True\n"
                       "s = structure_scores(m, np.roll(m, 1, axis=0), (1.5, 1.5, 8.0))\n"
                       "print(s.hd_mm, sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'monai')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split(" ", 1) == ["1.5", "[]\n"]
