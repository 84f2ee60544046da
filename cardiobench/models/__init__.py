"""Architecture builders registered by name: ``build("r2plus1d_18", **cfg)``.

The registry lives in :mod:`cardiobench.models.registry`. Importing this package imports every module
in this folder, so a general architecture is one new module here whose builder is decorated with
``@register(name)``; a family's own models (fVLM, MedVAE...) live in its folder, declared in its
``MODELS``, and are imported when first named."""
from __future__ import annotations

import importlib
import pkgutil

from .registry import MODELS, build, names, register  # noqa: F401

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")  # each builder module registers itself
