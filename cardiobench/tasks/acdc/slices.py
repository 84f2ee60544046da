"""2D slices of short-axis volumes for slice-wise segmentation training (ACDC).

Items are ``{"x": image (1, S, S) float32, "y": labels (S, S) int64}``. Augmentation is seeded by
(seed, epoch, item), so a resumed run sees the same augmented slices as an uninterrupted one.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class SliceDataset(Dataset):
    """Every slice of the given volumes; optional flips and MR-artifact augmentation (probability ``artifact_p``)."""

    def __init__(self, volumes: Sequence[dict[str, np.ndarray]], spacings: Sequence[Sequence[float]] | None = None,
                 augment: bool = False, artifact_p: float = 0.0, seed: int = 0, flips: bool = True):
        self.volumes = list(volumes)
        self.items = [(v, z) for v, vol in enumerate(self.volumes) for z in range(len(vol["image"]))]
        self.spacings = list(spacings) if spacings is not None else [(1.0, 1.0, 1.0)] * len(self.volumes)
        self.augment, self.artifact_p, self.seed, self.epoch = augment, float(artifact_p), int(seed), 0
        self.flips = flips

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        v, z = self.items[i]
        image = np.array(self.volumes[v]["image"][z], dtype=np.float32)  # a copy: cached arrays are read-only maps
        label = np.array(self.volumes[v]["label"][z], dtype=np.int64)
        if self.augment and (self.flips or self.artifact_p > 0):
            rng = np.random.default_rng([self.seed, self.epoch, i])
            image, label = self._augment(image, label, rng, self.spacings[v])
        return {"x": torch.from_numpy(np.ascontiguousarray(image))[None], "y": torch.from_numpy(np.ascontiguousarray(label))}

    def _augment(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator,
                 spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        # Orientation differs between scanners and patients: flips and quarter turns are label-preserving.
        if self.flips:
            k = int(rng.integers(4))
            image, label = np.rot90(image, k), np.rot90(label, k)
            if rng.random() < 0.5:
                image, label = image[:, ::-1], label[:, ::-1]
        if self.artifact_p > 0:
            from .artifacts import augment as artifact_augment

            image = artifact_augment(np.ascontiguousarray(image)[None], rng, self.artifact_p, spacing=spacing)[0]
        return image, label
