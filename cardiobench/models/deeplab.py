"""DeepLabV3 left-ventricle segmenters (EchoNet-Dynamic) with one output channel of logits."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from torchvision.models import resnet
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation import deeplabv3_resnet50
from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3

from .registry import register
from .weights import load_local


class Logits(nn.Module):
    """A torchvision segmentation model that returns its ``"out"`` tensor (B, C, H, W), not a dict."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]


def _finish(net: nn.Module, weights: str | None, output_bias: float | None) -> nn.Module:
    load_local(net, weights)
    if output_bias is not None and not weights:  # e.g. the logit of the LV's share of the image
        with torch.no_grad():
            net.classifier[-1].bias.fill_(float(output_bias))
    return Logits(net)


@register("deeplabv3_resnet50")
def deeplabv3_r50(weights: str | None = None, output_bias: float | None = None, num_outputs: int = 1) -> nn.Module:
    """The published model: torchvision's ``deeplabv3_resnet50`` (output stride 8), built offline.

    Equivalent to EchoNet-Dynamic's ``deeplabv3_resnet50(pretrained=False, aux_loss=False)`` with
    the last classifier convolution replaced by a ``num_outputs``-channel one.
    ``weights``: an optional local state dict (the original's checkpoints load, ``module.`` stripped).
    """
    net = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=num_outputs, aux_loss=False)
    return _finish(net, weights, output_bias)


@register("deeplabv3_lite")
def deeplabv3_lite(layers: Sequence[int] = (1, 1), weights: str | None = None, output_bias: float | None = None,
                   num_outputs: int = 1) -> nn.Module:
    """The smoke profile's reduced DeepLabV3: torchvision's DeepLabV3 and DeepLabHead (ASPP) over the
    first two stages of a BasicBlock ResNet (``layers`` blocks each), output stride 8 like the
    published dilated ResNet-50. About 2 M parameters instead of 40 M; ~10x faster on a CPU."""
    if len(layers) != 2:
        raise ValueError(f"deeplabv3_lite takes two stage depths, got {list(layers)}")
    backbone = resnet.ResNet(resnet.BasicBlock, [*layers, 1, 1])
    backbone = IntermediateLayerGetter(backbone, {"layer2": "out"})  # layer3/4 are dropped, never run
    net = DeepLabV3(backbone, DeepLabHead(128, num_outputs))
    return _finish(net, weights, output_bias)
