"""Traced echo frames and their LV masks, for training and scoring the segmentation model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass(frozen=True)
class TracedFrame:
    """One traced frame of one video: which video (index), which frame, its phase and its mask."""

    video: int
    frame: int
    phase: str  # "ED" or "ES"
    mask: np.ndarray  # (size, size) uint8


def normalize_frames(frames: np.ndarray, mean: float, std: float) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 3, H, W), normalised by the training set's mean and SD (EchoNet)."""
    x = (torch.from_numpy(np.array(frames, dtype=np.float32)) - mean) / std  # a copy: cached frames are read-only maps
    return x.unsqueeze(1).expand(-1, 3, -1, -1)


class TracedFrames(Dataset):
    """Items are ``{"x": image (3, H, W), "y": mask (H, W)}`` for every traced frame, in the given order."""

    def __init__(self, videos: Sequence[np.ndarray], items: Sequence[TracedFrame], mean: float, std: float):
        self.videos, self.items = videos, list(items)
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        it = self.items[i]
        x = normalize_frames(self.videos[it.video][it.frame][None], self.mean, self.std)[0]
        return {"x": x, "y": torch.from_numpy(it.mask).float()}
