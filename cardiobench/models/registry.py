"""The model registry: architecture builders by name (``@register("unet")``, ``build(name, **cfg)``).

Builders of general architectures live in :mod:`cardiobench.models` (imported by that package); a
family's own models are declared in its ``MODELS`` and imported when first named."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from .. import families
from ..registry import Registry
from .weights import fresh_parts

MODELS: Registry[Callable[..., nn.Module]] = Registry(
    "model", lambda: families.models(), hint="out-of-tree models: CARDIOBENCH_INCLUDE=folder or an entry point")


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    return MODELS.decorator(name)


def names() -> list[str]:
    return MODELS.names()


def build(name: str, **kwargs) -> nn.Module:
    """Build a registered model with random initialisation (or local weights via ``weights=``).

    ``fresh``: the parts a recipe trains fresh on loaded weights (``model.fresh``, see
    :mod:`cardiobench.models.weights`); taken here so that no builder needs the option."""
    builder = MODELS.get(name)
    fresh = kwargs.pop("fresh", None)
    if isinstance(fresh, str):
        fresh = [fresh]
    with fresh_parts(fresh):
        return builder(**kwargs)
