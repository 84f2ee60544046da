"""Training losses by name (``train.loss``): regression (MSE) and binary segmentation (BCE) here; a
family registers its own (EchoNet's clinically weighted MSE) through its ``LOSSES`` declaration."""
from __future__ import annotations

from typing import Callable

import torch

from . import families
from .registry import Registry

LOSSES: Registry[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = Registry(
    "train.loss", lambda: families.losses(), hint="a family declares its own in LOSSES")


def register_loss(name: str, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    LOSSES.register(name, fn)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.mse_loss(pred, target)


def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits, mean over pixels and images."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, target)


def bce_sum(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits summed over pixels and images: EchoNet-Dynamic's segmentation
    loss (``reduction="sum"``), the scale its published learning rate of 1e-5 belongs to."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum")


for _name, _fn in {"mse": mse, "bce": bce, "bce_sum": bce_sum}.items():
    register_loss(_name, _fn)
