"""Organ amounts: each organ's cumulative intensity histogram, standardised and added to its query output.

Why (a cardiobench recipe option, not part of fVLM): many CT findings are amounts inside an organ (the
volume of dense lung in consolidation, of low-attenuation lung in emphysema, of fluid around the heart).
On the CT-RATE twin at the smoke grid (4 x 4 x 6 mm) a single count, the voxels above -150 HU in the
lung label, separates consolidation with TEST AUROC 1.00, yet the 2-layer ViT behind an instance-normed
conv stem, trained *supervised*, scores it 0.23-0.54: instance normalisation takes out each volume's
mean, and 8^3-voxel tokens mostly straddle the organ's border. This branch keeps absolute amounts:

1. :func:`organ_profile` (data side, once per volume): for each organ and each threshold t_c of the
   window, the fraction of the organ's voxels above t_c (first-order radiomics; :func:`thresholds`
   spreads them evenly over the window: 16 levels of [-1150, 350] HU run from -1075 to 275 HU);
2. :class:`OrganAmounts` (model side): ``log(fraction + 1e-3)`` (amounts span decades), a per-organ,
   per-channel batch standardisation (organs' mean amounts differ by orders of magnitude; their
   variation between patients carries the findings) and a linear map to the ViT width.

Measured on the twin (fvlm_24 smoke, TEST zero-shot macro AUROC): without the branch 0.574 / 0.596 / 0.571
(seeds 0 / 1 / 2), with it 0.630 / 0.579 / 0.622. Learned levels (a 3 x 3 x 3 or 1 x 1 x 1 convolution and a
sigmoid at full resolution, initialised as these thresholds, seed 0) scored 0.621 / 0.607 at 1.8x the epoch
time, so the levels are fixed.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import CardiobenchError


def thresholds(channels: int) -> np.ndarray:
    """``channels`` thresholds spread evenly over the [0, 1] window, ends excluded (0.05 ... 0.95)."""
    if channels < 1:
        raise CardiobenchError(f"organ amounts need at least one channel, got {channels}")
    return np.linspace(0.05, 0.95, channels) if channels > 1 else np.array([0.5])


# Views of the volume an organ's amounts are counted on. Intensity views are thresholded at the window
# levels; residual views (what a 3 x 3 x 3 grey opening removes: small bright things such as nodules,
# calcified plaques, thickened bronchial walls; what a closing fills: small dark things such as dilated
# bronchi) at the levels scaled by RESIDUAL_SCALE (a residual of 0.02-0.38 of the window, 30-570 HU).
# "ring" counts the unlabelled voxels within RING_VOXELS of the organ (what lies against it: pleural or
# pericardial fluid), the way a radiologist looks just outside an organ as well as inside it. "volume"
# is one channel, not one per level: the organ's share of the volume's voxels (a heart's size).
VIEWS = ("raw", "mean3", "max3", "tophat", "blackhat", "ring", "volume")
RESIDUAL_VIEWS = ("tophat", "blackhat")
RESIDUAL_SCALE = 0.4
RING_VOXELS = 2
# The outside region (the whole-image embedding's profile): unlabelled voxels denser than BODY_LEVEL of
# the window (-500 HU: tissue, fluid, fat or metal, not air) and more than BONE_MARGIN voxels from any
# labelled bone, so that what is bright there is foreign (a device) rather than a bone's blurred edge.
BODY_LEVEL = 0.43
BONE_MARGIN = 2


def check_views(views: Sequence[str]) -> tuple[str, ...]:
    """``views`` as a tuple, each one of :data:`VIEWS`, none twice (CardiobenchError otherwise)."""
    views = tuple(str(v) for v in views)
    bad = [v for v in views if v not in VIEWS]
    if bad or not views or len(set(views)) != len(views):
        raise CardiobenchError(f"organ amount views must be distinct names of {', '.join(VIEWS)}; got {list(views)}")
    return views


def profile_channels(views: Sequence[str], levels: int) -> int:
    """Channels of a profile over ``views`` with ``levels`` thresholds (``volume`` gives one)."""
    return sum(1 if v == "volume" else int(levels) for v in check_views(views))


def view_image(image: np.ndarray, view: str) -> np.ndarray:
    """The voxel values that ``view`` thresholds (the image itself for ``raw`` and ``ring``)."""
    from scipy import ndimage as ndi

    if view in ("raw", "ring"):
        return image
    if view == "mean3":
        return ndi.uniform_filter(image, 3)
    if view == "max3":
        return ndi.maximum_filter(image, 3)
    if view == "tophat":
        return image - ndi.grey_opening(image, size=3)
    if view == "blackhat":
        return ndi.grey_closing(image, size=3) - image
    raise CardiobenchError(f"unknown organ amount view {view!r}; one of {', '.join(VIEWS)}")


def _surroundings(organ: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """Unlabelled voxels within RING_VOXELS (face-connected steps) of ``organ``, found in its bounding box."""
    from scipy import ndimage as ndi

    out = np.zeros_like(organ)
    idx = np.argwhere(organ)
    if not len(idx):
        return out
    box = tuple(slice(max(int(lo) - RING_VOXELS, 0), int(hi) + RING_VOXELS + 1)
                for lo, hi in zip(idx.min(0), idx.max(0)))
    out[box] = ndi.binary_dilation(organ[box], iterations=RING_VOXELS) & ~labelled[box]
    return out


def outside_region(image: np.ndarray, labels: np.ndarray, bone_ids: Sequence[int]) -> np.ndarray:
    """Unlabelled body voxels (above BODY_LEVEL) more than BONE_MARGIN voxels from any of ``bone_ids``."""
    from scipy import ndimage as ndi

    bone = np.isin(labels, list(bone_ids))
    if bone.any():
        bone = ndi.binary_dilation(bone, iterations=BONE_MARGIN)
    return (labels == 0) & (image > BODY_LEVEL) & ~bone


def _region_profile(filtered: dict[str, np.ndarray], region: np.ndarray, ring: np.ndarray | None,
                    levels: np.ndarray, views: Sequence[str]) -> np.ndarray:
    """One region's channels, view after view (zeros for an empty region, or a ring it does not have)."""
    out = []
    for v in views:
        if v == "volume":
            out.append(np.array([region.mean()], dtype=np.float32))
            continue
        where = ring if v == "ring" else region
        values = filtered[v][where] if where is not None else np.zeros(0, np.float32)
        at = levels * RESIDUAL_SCALE if v in RESIDUAL_VIEWS else levels
        out.append((values[:, None] > at[None]).mean(axis=0) if values.size else np.zeros(len(levels)))
    return np.concatenate(out).astype(np.float32)


def organ_profile(image: np.ndarray, labels: np.ndarray, table: dict[str, Sequence[int]],
                  levels: np.ndarray, views: Sequence[str] = ("raw",),
                  outside: Sequence[int] | None = None) -> np.ndarray:
    """float32 [O, K] (K = :func:`profile_channels`): for each organ of ``table`` (organ -> label ids) and
    each of ``views`` (:data:`VIEWS`), the fraction of its voxels of ``image`` (windowed to [0, 1], same
    shape as ``labels``) above each of ``levels`` (residual views: the levels times RESIDUAL_SCALE); 0
    where absent. With ``outside`` (the label ids of bones) a last row [O + 1] profiles
    :func:`outside_region`, for the whole-image embedding (its ring channels are 0)."""
    if image.shape != labels.shape:
        raise CardiobenchError(f"organ profile: image {image.shape} and labels {labels.shape} differ")
    views, levels = check_views(views), np.asarray(levels, dtype=np.float32)
    image = np.asarray(image, dtype=np.float32)  # the decode-once cache holds float16, which scipy's filters refuse
    filtered = {v: view_image(image, v) for v in views if v != "volume"}
    labelled = labels > 0
    rows = []
    for ids in table.values():
        organ = np.isin(labels, list(ids))
        ring = _surroundings(organ, labelled) if "ring" in views else None
        rows.append(_region_profile(filtered, organ, ring, levels, views))
    if outside is not None:
        rows.append(_region_profile(filtered, outside_region(image, labels, outside), None, levels, views))
    return np.stack(rows) if rows else np.zeros((0, profile_channels(views, len(levels))), np.float32)


class OrganAmounts(nn.Module):
    """``forward(profile [B, O, C]) -> [B, O, out_dim]``: log, per-organ batch standardisation, linear."""

    def __init__(self, n_organs: int, out_dim: int, channels: int = 16):
        super().__init__()
        self.n_organs, self.channels = int(n_organs), int(channels)
        self.norm = nn.BatchNorm1d(self.n_organs * self.channels, affine=False)
        self.proj = nn.Linear(self.channels, out_dim)

    def forward(self, profile: torch.Tensor) -> torch.Tensor:
        b = profile.shape[0]
        if tuple(profile.shape[1:]) != (self.n_organs, self.channels):
            raise CardiobenchError(f"organ profile {tuple(profile.shape)} is not [B, {self.n_organs} organs, "
                                   f"{self.channels} levels]")
        flat = torch.log(profile.float() + 1e-3).reshape(b, -1)
        # a batch of one has no spread to standardise with: use the running statistics
        flat = self.norm(flat) if b > 1 or not self.training else F.batch_norm(
            flat, self.norm.running_mean, self.norm.running_var, training=False, eps=self.norm.eps)
        return self.proj(flat.reshape(b, self.n_organs, self.channels).to(self.proj.weight.dtype))
