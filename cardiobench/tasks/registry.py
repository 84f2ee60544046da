"""The task registry: task classes by name, the families' built-ins imported on first lookup."""
from __future__ import annotations

from typing import Any

from .. import families
from ..registry import Registry

TASKS: Registry[Any] = Registry("task code", lambda: families.tasks(),
                                hint="out-of-tree tasks: CARDIOBENCH_INCLUDE=folder")
