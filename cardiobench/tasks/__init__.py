"""Task code by name: the built-in tasks, include-path folders and ``cardiobench.tasks`` entry points.

Importing this package loads no task (and no torch); :func:`get` imports what it needs.
"""
from __future__ import annotations

import importlib

from ..errors import CardiobenchError

BUILTIN = {"echonet_ef": "cardiobench.tasks.echonet_ef", "echonet_seg": "cardiobench.tasks.echonet_seg",
           "acdc_seg": "cardiobench.tasks.acdc_seg", "ct_cardiac": "cardiobench.tasks.ct_cardiac",
           "ctrate_zeroshot": "cardiobench.tasks.ctrate_zeroshot"}


def get(name: str):
    """An instance of the task registered as ``name`` (a ``.vN`` suffix names a version of it)."""
    from .. import plugins
    from .base import registered

    base = name.split(".v")[0]
    if base in BUILTIN:
        importlib.import_module(BUILTIN[base])
    if base not in registered():
        plugins.load_code()
    if base not in registered():
        known = sorted({*BUILTIN, *registered()})
        raise CardiobenchError(f"no task code registered for {name!r}; known: {', '.join(known)} "
                               f"(out-of-tree tasks: CARDIOBENCH_INCLUDE=folder)")
    return registered()[base]()


def __getattr__(name: str):
    """``from cardiobench.tasks import Task, TaskData, register_task`` (imports torch only then)."""
    if name in ("Task", "TaskData", "register_task"):
        from . import base

        return getattr(base, name)
    raise AttributeError(name)
