"""Whole preprocessed volumes with per-volume targets as a Dataset (chest CT: LVEF and aortic stenosis).

Items are ``{"x": [1, Z, X, Y], <target>: scalar}`` (``depth_first``, Merlin's layout; else
[1, X, Y, Z]). The arrays are the decode-once cache's memory-mapped files, so a paper-size training set is read
from disk per item, never held in memory. ``label_weighted`` draws each epoch's items so that both
classes of ``balance_on`` are equally frequent (MedVAE's downstream recipe), seeded by (seed, epoch).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class VolumeDataset(Dataset):
    def __init__(self, volumes: Sequence[np.ndarray], targets: dict[str, Sequence[float]], depth_first: bool = True,
                 label_weighted: bool = False, balance_on: str | None = None, seed: int = 0):
        self.volumes, self.depth_first = list(volumes), depth_first
        self.targets = {k: np.asarray(v, dtype=np.float32) for k, v in targets.items()}
        self.label_weighted, self.balance_on, self.seed = label_weighted, balance_on, seed
        self.order = np.arange(len(self.volumes))

    def set_epoch(self, epoch: int) -> None:
        """Redraw the epoch's items: class-balanced with replacement when ``label_weighted``."""
        if not self.label_weighted or self.balance_on is None:
            return
        y = self.targets[self.balance_on]
        w = np.where(y == 1, 0.5 / max((y == 1).sum(), 1), 0.5 / max((y == 0).sum(), 1))
        rng = np.random.default_rng([self.seed, epoch])
        self.order = rng.choice(len(y), size=len(y), replace=True, p=w / w.sum())

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        j = int(self.order[i])
        x = torch.from_numpy(np.asarray(self.volumes[j], dtype=np.float32))  # float16 on disk -> float32
        if self.depth_first:  # (X, Y, Z) RAS -> (Z, X, Y): Merlin's layout, the cranio-caudal axis as "time"
            x = x.permute(2, 0, 1)
        return {"x": x[None], **{k: torch.tensor(v[j]) for k, v in self.targets.items()}}
