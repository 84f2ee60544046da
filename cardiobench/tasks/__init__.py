"""Tasks by name: the families' built-in tasks (one folder each, see :mod:`cardiobench.families`),
include-path folders and ``cardiobench.tasks`` entry points.

Importing this package loads no task (and no torch); :func:`get` imports what it needs. The generic
task protocol is :mod:`cardiobench.tasks.base`; the shared data-preparation step is
:mod:`cardiobench.tasks.prepare`.
"""
from __future__ import annotations

from .registry import TASKS


def get(name: str):
    """An instance of the task registered as ``name`` (a ``.vN`` suffix names a version of it)."""
    return TASKS.get(name.split(".v")[0])()


def __getattr__(name: str):
    """``from cardiobench.tasks import Task, TaskData, register_task`` (imports torch only then)."""
    if name in ("Task", "TaskData", "register_task"):
        from . import base

        return getattr(base, name)
    raise AttributeError(name)
