"""Task protocols by name: ``run`` (train + predict into a run folder) and ``evaluate`` (metrics)."""
from __future__ import annotations

from types import ModuleType

from ..errors import CardiobenchError
from . import echonet_ef, echonet_seg

TASKS: dict[str, ModuleType] = {"echonet_ef": echonet_ef, "echonet_seg": echonet_seg}


def get(name: str) -> ModuleType:
    base = name.split(".v")[0]
    if base not in TASKS:
        raise CardiobenchError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[base]
