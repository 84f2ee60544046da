"""2D slice-wise U-Nets for cine-MRI segmentation (ACDC): MONAI's ``UNet`` and ``AttentionUnet``.

Both output ``num_classes`` channels of logits (background, RV, MYO, LV). Built with random
initialisation; ``weights`` is an optional local state dict (nothing is downloaded).
"""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from .registry import register
from .weights import load_local


@register("monai_unet")
def monai_unet(channels: Sequence[int] = (16, 32, 64, 128, 256), strides: Sequence[int] | None = None,
               num_res_units: int = 2, num_classes: int = 4, in_channels: int = 1, norm: str = "batch",
               dropout: float = 0.0, weights: str | None = None) -> nn.Module:
    """``monai.networks.nets.UNet`` (2D; residual units, stride-2 downsampling between levels)."""
    from monai.networks.nets import UNet

    net = UNet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, channels=tuple(channels),
               strides=tuple(strides or [2] * (len(channels) - 1)), num_res_units=num_res_units, norm=norm,
               dropout=dropout)
    return load_local(net, weights)


@register("monai_attention_unet")
def monai_attention_unet(channels: Sequence[int] = (16, 32, 64, 128, 256), strides: Sequence[int] | None = None,
                         num_classes: int = 4, in_channels: int = 1, dropout: float = 0.0,
                         weights: str | None = None) -> nn.Module:
    """``monai.networks.nets.AttentionUnet`` (Oktay et al. 2018 attention gates on the skip connections)."""
    from monai.networks.nets import AttentionUnet

    net = AttentionUnet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, channels=tuple(channels),
                        strides=tuple(strides or [2] * (len(channels) - 1)), dropout=dropout)
    return load_local(net, weights)
