"""The model registry: architecture builders by name (``@register("unet")``, ``build(name, **cfg)``).

Builder modules register here; :mod:`cardiobench.models` imports them all, so ``build`` sees every
built-in once that package is imported."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..errors import CardiobenchError
from .weights import fresh_parts

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = fn
        return fn

    return deco


def names() -> list[str]:
    return sorted(_REGISTRY)


def build(name: str, **kwargs) -> nn.Module:
    """Build a registered model with random initialisation (or local weights via ``weights=``).

    ``fresh``: the parts a recipe trains fresh on loaded weights (``model.fresh``, see
    :mod:`cardiobench.models.weights`); taken here so that no builder needs the option."""
    if name not in _REGISTRY:
        raise CardiobenchError(f"unknown model {name!r}; registered: {', '.join(names())}")
    fresh = kwargs.pop("fresh", None)
    if isinstance(fresh, str):
        fresh = [fresh]
    with fresh_parts(fresh):
        return _REGISTRY[name](**kwargs)
