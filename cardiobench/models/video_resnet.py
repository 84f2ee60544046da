"""torchvision video ResNets (R(2+1)D, R3D, MC3) as single-output regressors, as in EchoNet-Dynamic."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from torchvision.models.video import resnet as tvr

from .registry import register
from .weights import load_local

_SPECS = {
    "r2plus1d_18": (tvr.r2plus1d_18, [tvr.Conv2Plus1D] * 4, tvr.R2Plus1dStem),
    "r3d_18": (tvr.r3d_18, [tvr.Conv3DSimple] * 4, tvr.BasicStem),
    "mc3_18": (tvr.mc3_18, [tvr.Conv3DSimple] + [tvr.Conv3DNoTemporal] * 3, tvr.BasicStem),
}


def _to_channels_last(module: nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(memory_format=torch.channels_last_3d), *args[1:])


def video_resnet(arch: str, layers: Sequence[int] = (2, 2, 2, 2), weights: str | None = None,
                 output_bias: float | None = None, num_outputs: int = 1) -> nn.Module:
    """A torchvision video ResNet with a ``num_outputs``-unit linear head, built offline.

    ``layers=(2, 2, 2, 2)`` is the published 18-layer network (built by torchvision's own
    constructor with ``weights=None``); fewer blocks per stage give the reduced-depth variant the
    smoke profile trains on CPU. ``output_bias`` sets the head's bias (EchoNet: training-mean EF).
    """
    ctor, conv_makers, stem = _SPECS[arch]
    if tuple(layers) == (2, 2, 2, 2):
        model = ctor(weights=None)
    else:
        model = tvr.VideoResNet(block=tvr.BasicBlock, conv_makers=conv_makers, layers=list(layers), stem=stem)
    model.fc = nn.Linear(model.fc.in_features, num_outputs)
    load_local(model, weights)
    if output_bias is not None and not weights:
        with torch.no_grad():
            model.fc.bias.fill_(float(output_bias))
    return model


def channels_last(model: nn.Module) -> nn.Module:
    """Weights and inputs of a trained video ResNet in channels-last-3d order, for prediction.

    oneDNN's 3-D convolutions run it faster: on 2 CPU cores +75 % clips/s in inference (+20 % in
    training, which we do not use: it changes the float summation order, hence the seeded smoke
    result). Other models are returned unchanged.
    """
    if isinstance(model, tvr.VideoResNet):
        model.to(memory_format=torch.channels_last_3d)
        model.register_forward_pre_hook(_to_channels_last)
    return model


for _arch in _SPECS:
    register(_arch)(lambda _a=_arch, **kw: video_resnet(_a, **kw))
