"""The training loop's batching rule for BatchNorm: a last batch of one sample is dropped only when the model
batch-normalises (a DDP rank's shard can leave one where the whole set did not: echonet_seg's DeepLabV3
pools its ASPP branch to 1 x 1 and BatchNorm refuses a lone sample there)."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from cardiobench.train import TrainConfig, drops_lone_sample, fit


class _Pooled(nn.Module):
    """Global pooling, then conv + BatchNorm on 1 x 1 features, as DeepLabV3's ASPP pooling branch."""

    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(1, 4, 1), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.Flatten(), nn.Linear(4, 1))

    def forward(self, x):
        return self.head(x)


class _Images(Dataset):
    def __init__(self, n: int):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 1, 6, 6, generator=g), torch.randn(n, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def test_the_rule():
    bn, plain = _Pooled(), nn.Linear(2, 1)
    assert drops_lone_sample(bn, 9, 4) and not drops_lone_sample(bn, 8, 4) and not drops_lone_sample(bn, 10, 4)
    assert not drops_lone_sample(plain, 9, 4)  # nothing to normalise: every sample trains
    assert not drops_lone_sample(bn, 1, 4) and not drops_lone_sample(bn, 9, 1)


def test_fit_trains_a_batchnorm_model_whose_last_batch_would_be_one_sample(tmp_path):
    train = _Images(9)  # batches of 4, 4 and a lone 1
    model = _Pooled()
    model.train()
    try:  # what the loop would run into without the rule
        model(train.x[:1])
        raise AssertionError("BatchNorm accepted a lone sample; the rule's reason is gone")
    except ValueError as e:
        assert "more than 1 value per channel" in str(e)
    cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-2, device="cpu", progress=False, schedule="onecycle")
    history = fit(model, train, _Images(4), cfg, tmp_path / "ckpt")
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(h["train_loss"])) for h in history)
