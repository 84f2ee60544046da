"""Dataset families: one folder each under ``cardiobench/tasks/`` (``echonet``, ``acdc``, ``chest_ct``,
``ctrate``), holding everything of one data set: its task specs (``<task>.yaml``), format reader and
twin, preprocessing, task hooks, figure kinds, model builders and a README.

A family's ``__init__.py`` declares, without importing anything heavy, which of its modules define
what (module names relative to the family package)::

    FORMATS = {"acdc": "format"}          # format name -> module defining FORMAT
    TASKS = {"acdc_seg": "acdc_seg"}      # task name -> module with its @register_task class
    MODELS = {}                           # model name -> module with its @register builder
    FIGURES = {"mask_overlay": "figures"} # figure kind -> module registering it (torch-free)
    CI_MODES = {}                         # ci.mode name -> a named interval convention (level, method,
                                          #   n_resamples, label): a paper's own, reproduced exactly
    LOSSES = {}                           # train.loss name -> module registering it
    METRICS = {}                          # metric function -> module registering it (torch-free)

A new family is a new folder with such an ``__init__.py``: nothing outside it changes. The generic
registries (:mod:`cardiobench.registry`) read these declarations to import a module only when one of
its names is looked up, so scoring a run imports no torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent / "tasks"


@dataclass(frozen=True)
class Family:
    name: str
    folder: Path
    package: str
    formats: dict[str, str]
    tasks: dict[str, str]
    models: dict[str, str]
    losses: dict[str, str]
    metrics: dict[str, str]
    figures: dict[str, str]
    ci_modes: dict[str, dict]

    def specs(self) -> dict[str, Path]:
        """``{task: spec file}`` of the family's ``*.yaml``."""
        return {p.stem: p for p in sorted(self.folder.glob("*.yaml"))}


def _load(folder: Path) -> Family:
    package = f"cardiobench.tasks.{folder.name}"
    module = importlib.import_module(package)

    def absolute(mods: dict[str, str]) -> dict[str, str]:
        return {name: f"{package}.{mod}" for name, mod in mods.items()}

    return Family(name=folder.name, folder=folder, package=package,
                  formats=absolute(getattr(module, "FORMATS", {})), tasks=absolute(getattr(module, "TASKS", {})),
                  models=absolute(getattr(module, "MODELS", {})), losses=absolute(getattr(module, "LOSSES", {})),
                  metrics=absolute(getattr(module, "METRICS", {})),
                  figures=absolute(getattr(module, "FIGURES", {})), ci_modes=dict(getattr(module, "CI_MODES", {})))


@lru_cache(maxsize=None)
def families() -> tuple[Family, ...]:
    """Every family folder (a subfolder of ``cardiobench/tasks`` with an ``__init__.py``), by name."""
    return tuple(_load(p) for p in sorted(TASKS_DIR.iterdir())
                 if p.is_dir() and (p / "__init__.py").is_file() and not p.name.startswith(("_", ".")))


def _declared(kind: str) -> dict[str, str]:
    """``{name: module}`` of one kind over all families; a name two families declare is refused."""
    from .errors import CardiobenchError

    out: dict[str, str] = {}
    where: dict[str, str] = {}
    for fam in families():
        for name, module in getattr(fam, kind).items():
            if name in out:
                raise CardiobenchError(f"{kind[:-1]} {name!r} is declared by two families: {where[name]} and "
                                       f"{fam.name}; rename one of them")
            out[name], where[name] = module, fam.name
    return out


def formats() -> dict[str, str]:
    return _declared("formats")


def tasks() -> dict[str, str]:
    return _declared("tasks")


def models() -> dict[str, str]:
    return _declared("models")


def losses() -> dict[str, str]:
    return _declared("losses")


def metrics() -> dict[str, str]:
    return _declared("metrics")


def figures() -> dict[str, str]:
    return _declared("figures")


def ci_modes() -> dict[str, dict]:
    return _declared("ci_modes")


def spec_files() -> dict[str, Path]:
    """``{task: spec file}`` over all families (a task name two families use is refused)."""
    from .errors import CardiobenchError

    out: dict[str, Path] = {}
    for fam in families():
        for name, path in fam.specs().items():
            if name in out:
                raise CardiobenchError(f"task spec {name!r} is defined twice: {out[name]} and {path}")
            out[name] = path
    return out
