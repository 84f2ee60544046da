"""Tasks, baselines, formats, models and metrics from outside the package (lm-eval's include path).

``CARDIOBENCH_INCLUDE=dir1:dir2`` names folders laid out like the package's own::

    dir/task/<task>.yaml        task specs (validated like the built-in ones)
    dir/baselines/<name>.yaml   baseline recipes
    dir/*.py                    code: @register_task / @register_model / register_format / @register_metric

Installed packages can do the same through entry points in the groups ``cardiobench.tasks``,
``cardiobench.models``, ``cardiobench.formats`` and ``cardiobench.metrics``: each entry point
names a module whose import registers what it defines (and may call :func:`add_folder` for its
YAML files). YAML is read without importing code; code is imported only when a task, model,
format or metric is looked up, so scoring a run needs no torch.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from .errors import CardiobenchError

ENTRY_POINT_GROUPS = ("cardiobench.tasks", "cardiobench.models", "cardiobench.formats", "cardiobench.metrics")
_extra: list[Path] = []
_loaded = False


def add_folder(path: str | os.PathLike) -> None:
    """Add an include folder from code (an entry-point module holding its own task/ and baselines/)."""
    p = Path(path)
    if p not in _extra:
        _extra.append(p)


def include_dirs() -> list[Path]:
    """The include folders: ``CARDIOBENCH_INCLUDE`` (os.pathsep-separated), then those added from code."""
    out = []
    for part in os.environ.get("CARDIOBENCH_INCLUDE", "").split(os.pathsep):
        if part.strip():
            p = Path(part.strip()).expanduser()
            if not p.is_dir():
                raise CardiobenchError(f"{p}: CARDIOBENCH_INCLUDE names a folder that does not exist")
            out.append(p.resolve())
    return out + [p for p in _extra if p not in out]


def yaml_files(kind: str) -> dict[str, Path]:
    """``{stem: path}`` of the include folders' ``task/*.yaml`` or ``baselines/*.yaml``."""
    out: dict[str, Path] = {}
    for d in include_dirs():
        for p in sorted((d / kind).glob("*.yaml")):
            out.setdefault(p.stem, p)
    return out


def load_code() -> None:
    """Import the include folders' modules and the entry points (once): they register themselves."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in _entry_points():
        try:
            ep.load()
        except Exception as exc:  # a broken plugin names itself instead of a traceback
            raise CardiobenchError(f"entry point {ep.group}:{ep.name} ({ep.value}) failed to load: {exc}") from None
    for d in include_dirs():
        for py in sorted(d.glob("*.py")):
            name = f"cardiobench_include_{abs(hash(str(d))) % 10**8}_{py.stem}"
            if name in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(name, py)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)


def _entry_points() -> list:
    eps = entry_points()
    return [ep for group in ENTRY_POINT_GROUPS for ep in eps.select(group=group)]
