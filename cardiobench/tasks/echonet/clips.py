"""Echo video clips for training and testing, cut from uint8 videos decoded once (the cache).

A clip is ``frames`` frames taken every ``period`` frames from a start frame, normalised by the
training set's mean and SD, shaped (C=3, T, H, W) as torchvision's video ResNets expect (the gray
echo replicated over 3 channels, like the RGB AVIs of EchoNet-Dynamic).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])


def intensity_stats(videos: Sequence[np.ndarray], max_videos: int = 128) -> tuple[float, float]:
    """Mean and SD of pixel intensity over (up to ``max_videos`` of) the training videos."""
    sample = videos[:max_videos]
    total = sum(v.size for v in sample)
    mean = sum(float(v.sum(dtype=np.float64)) for v in sample) / total
    var = sum(float(np.square(v - mean, dtype=np.float64).sum()) for v in sample) / total
    return mean, float(np.sqrt(var))


class EchoClips(Dataset):
    """One clip per video per item; where the clip starts is drawn from a seeded generator.

    ``seed`` and :meth:`set_epoch` fix each item's clip start independently of worker count and
    iteration order, so training is reproducible and resumable at epoch boundaries.
    """

    def __init__(self, videos: Sequence[np.ndarray], targets: Sequence[float], frames: int, period: int,
                 mean: float, std: float, seed: int = 0, normalize: str = "dataset", layout: str = "CTHW"):
        self.videos, self.targets = list(videos), np.asarray(targets, dtype=np.float32)
        self.frames, self.period = frames, period
        self.mean, self.std = mean, std
        self.seed, self.epoch = seed, 0
        if normalize not in ("dataset", "imagenet") or layout not in ("CTHW", "TCHW"):
            raise ValueError(f"normalize must be dataset|imagenet and layout CTHW|TCHW, got {normalize}, {layout}")
        self.normalize, self.layout = normalize, layout

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def videos_at(self, indices: Sequence[int]) -> "EchoClips":
        """The same clips of some videos only (for deterministic clips: all-clips and beat-by-beat
        inference; a seeded single clip depends on the item's index, so use ``Subset`` there)."""
        return EchoClips([self.videos[i] for i in indices], self.targets[np.asarray(indices, dtype=int)], self.frames,
                         self.period, self.mean, self.std, self.seed, self.normalize, self.layout)

    def __len__(self) -> int:
        return len(self.videos)

    def clip(self, video: np.ndarray, start: int) -> torch.Tensor:
        idx = start + self.period * np.arange(self.frames)
        idx = idx[idx < len(video)]
        x = video[idx]
        if len(idx) < self.frames:  # short video: pad with zero frames, as EchoNet-Dynamic does
            x = np.concatenate([x, np.zeros((self.frames - len(idx), *video.shape[1:]), video.dtype)])
        x = torch.from_numpy(x).float()
        if self.normalize == "imagenet":  # pretrained video transformers: [0, 1] then ImageNet mean/SD per channel
            x = (x[None] / 255.0 - IMAGENET_MEAN[:, None, None, None]) / IMAGENET_STD[:, None, None, None]
        else:  # EchoNet-Dynamic: the training set's mean and SD
            x = ((x - self.mean) / self.std).unsqueeze(0).expand(3, -1, -1, -1)
        return x.transpose(0, 1) if self.layout == "TCHW" else x

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """``{"x": clip, "y": target}``; the clip starts where the item's seeded generator says."""
        video = self.videos[i]
        span = (self.frames - 1) * self.period + 1
        rng = np.random.default_rng([self.seed, self.epoch, i])
        start = int(rng.integers(0, max(1, len(video) - span + 1)))
        return {"x": self.clip(video, start), "y": torch.tensor(self.targets[i])}
