"""Whole preprocessed volumes with per-volume targets as a Dataset (chest CT: LVEF and aortic stenosis).

Items are ``{"x": [1, Z, X, Y], <target>: scalar}`` (``depth_first``, Merlin's layout; else
[1, X, Y, Z]); a 4-D array is taken as channels-first already (an autoencoder's latent ``[C, z, x, y]``). The arrays are the decode-once cache's memory-mapped files, so a paper-size training set is read
from disk per item, never held in memory. ``label_weighted`` draws each epoch's items so that both
classes of ``balance_on`` are equally frequent (MedVAE's downstream recipe), seeded by (seed, epoch).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class VolumeDataset(Dataset):
    def __init__(self, volumes: Sequence[np.ndarray], targets: dict[str, Sequence[float]], depth_first: bool = True,
                 label_weighted: bool = False, balance_on: str | None = None, seed: int = 0,
                 augment: Callable | None = None):
        self.volumes, self.depth_first, self.augment, self.epoch = list(volumes), depth_first, augment, 0
        self.targets = {k: np.asarray(v, dtype=np.float32) for k, v in targets.items()}
        self.label_weighted, self.balance_on, self.seed = label_weighted, balance_on, seed
        self.order = np.arange(len(self.volumes))

    def set_epoch(self, epoch: int) -> None:
        """Redraw the epoch's items: class-balanced with replacement when ``label_weighted``."""
        self.epoch = epoch
        if not self.label_weighted or self.balance_on is None:
            return
        y = self.targets[self.balance_on]
        w = np.where(y == 1, 0.5 / max((y == 1).sum(), 1), 0.5 / max((y == 0).sum(), 1))
        rng = np.random.default_rng([self.seed, epoch])
        self.order = rng.choice(len(y), size=len(y), replace=True, p=w / w.sum())

    def __len__(self) -> int:
        return len(self.order)

    def as_input(self, volume: np.ndarray) -> torch.Tensor:
        """One stored array as the network's float32 input ``[C, ...]``."""
        x = torch.from_numpy(np.array(volume, dtype=np.float32))  # a float32 copy of the (read-only) cached array
        if x.ndim == 4:
            return x
        if self.depth_first:  # (X, Y, Z) RAS -> (Z, X, Y): Merlin's layout, the cranio-caudal axis as "time"
            x = x.permute(2, 0, 1)
        return x[None]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        j = int(self.order[i])
        x = self.as_input(self.volumes[j])
        if self.augment is not None:
            self.augment.set_random_state(seed=int(np.random.SeedSequence([self.seed, self.epoch, i]).generate_state(1)[0]))
            x = self.augment(x)
            x = x.as_tensor() if hasattr(x, "as_tensor") else x  # a plain tensor, not MONAI's MetaTensor
        return {"x": x, **{k: torch.tensor(v[j]) for k, v in self.targets.items()}}


def volume_augmentation(shift: Sequence[int], rotate_deg: float = 0.0, intensity_scale: float = 0.0,
                        intensity_shift: float = 0.0) -> Callable | None:
    """MONAI random transform of a ``[C, *spatial]`` volume: a whole-voxel translation of up to ``shift``
    voxels per axis (zero padding then a random crop back to the size: no interpolation; zero is air
    after Merlin's HU window), a rotation of up to ``rotate_deg`` degrees about each axis (bilinear,
    slower), then intensity ``x * (1 + s) + o`` with |s| <= ``intensity_scale`` and |o| <= ``intensity_shift``.
    None when every range is zero."""
    from monai.transforms import BorderPad, Compose, RandAffine, RandScaleIntensity, RandShiftIntensity, RandSpatialCrop

    parts: list = []
    shift = [int(v) for v in shift]
    if any(shift):
        parts.append(BorderPad(spatial_border=shift, mode="constant"))
        parts.append(_crop_back(RandSpatialCrop(roi_size=-1, random_size=False), shift))
    if rotate_deg:
        r = float(np.deg2rad(rotate_deg))
        parts.append(RandAffine(prob=1.0, rotate_range=(r, r, r), padding_mode="zeros", mode="bilinear"))
    if intensity_scale:
        parts.append(RandScaleIntensity(factors=float(intensity_scale), prob=1.0))
    if intensity_shift:
        parts.append(RandShiftIntensity(offsets=float(intensity_shift), prob=1.0))
    return Compose(parts) if parts else None


def _crop_back(crop, border: Sequence[int]):
    """``RandSpatialCrop`` to the size before ``BorderPad`` (the padded size minus twice the border)."""
    from monai.transforms import Randomizable

    class CropBack(Randomizable):
        def randomize(self, data=None) -> None:
            pass

        def set_random_state(self, seed=None, state=None):
            crop.set_random_state(seed, state)
            return self

        def __call__(self, x):
            crop.roi_size = [s - 2 * b for s, b in zip(x.shape[1:], border)]
            return crop(x)

    return CropBack()

