"""Clip extraction and all-clips averaging: short videos, layouts, bounded batches."""
from __future__ import annotations

import numpy as np
import torch

from cardiobench.tasks.echonet.clips import IMAGENET_MEAN, EchoClips
from cardiobench.tasks.echonet.inference import predict_all_clips
from cardiobench.train import TrainConfig


class MeanModel(torch.nn.Module):
    """Predicts the clip's mean intensity: all-clips averaging must equal the mean over clip means."""

    def forward(self, x):
        return x.float().mean(dim=(1, 2, 3, 4))[:, None]


def test_short_video_is_zero_padded_not_an_error():
    video = np.full((5, 8, 8), 100, dtype=np.uint8)
    ds = EchoClips([video], [50.0], frames=16, period=2, mean=0.0, std=1.0)
    item = ds[0]
    x, y = item["x"], item["y"]
    assert x.shape == (3, 16, 8, 8) and float(y) == 50.0
    assert torch.all(x[:, :3] == 100) and torch.all(x[:, 3:] == 0)  # frames 0, 2, 4 exist, the rest pad


def test_imagenet_layout_for_video_transformers():
    video = np.full((40, 8, 8), 255, dtype=np.uint8)
    x = EchoClips([video], [50.0], frames=16, period=2, mean=0.0, std=1.0, normalize="imagenet", layout="TCHW")[0]["x"]
    assert x.shape == (16, 3, 8, 8)
    assert torch.allclose(x[0, :, 0, 0], (1 - IMAGENET_MEAN) / torch.tensor([0.229, 0.224, 0.225]))


def test_all_clips_mean_matches_brute_force_for_any_batch():
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 255, (n, 6, 6), dtype=np.uint8) for n in (30, 9, 64)]
    ds = EchoClips(videos, [0.0] * 3, frames=4, period=3, mean=0.0, std=1.0)
    cfg = TrainConfig(epochs=1, batch_size=1, lr=0.0, progress=False)
    span = 10
    expected = [np.mean([ds.clip(v, s).mean().item() for s in range(max(1, len(v) - span + 1))]) for v in videos]
    for batch in (1, 5, 100):
        assert np.allclose(predict_all_clips(MeanModel(), ds, cfg, stride=1, batch=batch), expected, atol=1e-4)
    strided = predict_all_clips(MeanModel(), ds, cfg, stride=7, batch=3)
    assert np.allclose(strided[1], expected[1])  # a video shorter than one clip: its single padded clip
