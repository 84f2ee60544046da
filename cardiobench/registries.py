"""Every registry of the package in one place, by the kind of name it holds. Each lives next to what it
registers (:class:`cardiobench.registry.Registry` instances); this table lists them all."""
from __future__ import annotations

import importlib

from .errors import CardiobenchError
from .registry import Registry

# where each lives: (module, attribute)
REGISTRIES = {
    "format": ("cardiobench.data", "FORMATS"),
    "task": ("cardiobench.tasks.registry", "TASKS"),
    "model": ("cardiobench.models.registry", "MODELS"),
    "metric": ("cardiobench.evaluation.registry", "METRICS"),
    "loss": ("cardiobench.losses", "LOSSES"),
    "figure kind": ("cardiobench.report.figures", "KINDS"),
}


def registry(kind: str) -> Registry:
    """The registry of ``kind`` (a key of :data:`REGISTRIES`; the model and loss ones import torch)."""
    if kind not in REGISTRIES:
        raise CardiobenchError(f"no registry of {kind!r}; the kinds are {', '.join(REGISTRIES)}")
    module, attr = REGISTRIES[kind]
    return getattr(importlib.import_module(module), attr)
