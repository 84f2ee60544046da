"""Configuration: dataclass schemas in Hydra's ConfigStore, baseline recipes, and resolution.

Baselines live in the top-level ``baselines/`` folder (one YAML per recipe) and are registered
as the Hydra config group ``baseline``. A recipe holds the published (``paper``) settings at top
level and per-profile deviations under ``profiles.<name>``; :func:`resolve` merges the chosen
profile's section over them and then re-applies the user's overrides so those always win.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from .errors import CardiobenchError

PACKAGE_DIR = Path(__file__).resolve().parent
CONF_DIR = PACKAGE_DIR / "conf"
PROJECT_DIR = Path(os.environ.get("CARDIOBENCH_HOME", PACKAGE_DIR.parent))
BASELINES_DIR = PROJECT_DIR / "baselines"
LEADERBOARDS_DIR = PROJECT_DIR / "leaderboards"
TEMPLATES_DIR = PROJECT_DIR / "report_templates"


@dataclass
class TaskSchema:
    name: str
    version: int
    format: str
    description: str
    split: str
    targets: list[str]
    main_score: str
    main_score_direction: str
    metrics: list[str]
    reference_baseline: str
    metric_definitions: dict[str, str] = field(default_factory=dict)


@dataclass
class TwinSchema:
    n: int = 500
    seed: int = 0


@dataclass
class DataSchema:
    root: Optional[str] = None
    cache_dir: str = "~/.cache/cardiobench"
    workers: int = 2
    decoded_cache: bool = True
    twin: TwinSchema = field(default_factory=TwinSchema)


@dataclass
class RootSchema:
    seed: int = 0
    resume: bool = False
    run_dir: Optional[str] = None
    runs_root: str = "runs"
    progress: bool = True
    report: bool = True
    data: DataSchema = field(default_factory=DataSchema)
    task: Any = None
    profile: Any = None
    baseline: Any = None
    model: Any = None
    train: Any = None
    clip: Any = None
    image: Any = None
    eval: Any = None
    profiles: Any = None
    ci: Any = None


REQUIRED_BASELINE_KEYS = ("name", "task", "title", "citation", "published")
REQUIRED_PUBLISHED_KEYS = ("metric", "value", "definition", "split", "n", "source")


def validate_baseline(path: Path, node: DictConfig) -> None:
    """Check a recipe's metadata on load: citation, each published number with its definition."""
    meta = node.get("baseline")
    if meta is None:
        raise CardiobenchError(f"{path}: no 'baseline:' section")
    for key in REQUIRED_BASELINE_KEYS:
        if key not in meta:
            raise CardiobenchError(f"{path}: baseline.{key} is missing")
    if meta.name != path.stem:
        raise CardiobenchError(f"{path}: baseline.name {meta.name!r} differs from the file name")
    if not (meta.citation.get("doi") or meta.citation.get("bibtex")):
        raise CardiobenchError(f"{path}: baseline.citation needs a doi or a bibtex entry")
    for i, pub in enumerate(meta.published):
        for key in REQUIRED_PUBLISHED_KEYS:
            if key not in pub:
                raise CardiobenchError(f"{path}: baseline.published[{i}] lacks '{key}'")
    for key in ("model", "train", "profiles"):
        if key not in node:
            raise CardiobenchError(f"{path}: no '{key}:' section")


@lru_cache(maxsize=None)
def baseline_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(BASELINES_DIR.glob("*.yaml"))}


def load_baseline(name: str) -> DictConfig:
    files = baseline_files()
    if name not in files:
        raise CardiobenchError(f"unknown baseline {name!r}; known: {', '.join(files) or 'none'} (in {BASELINES_DIR})")
    node = OmegaConf.load(files[name])
    parent = node.pop("extends", None)
    if parent is not None:  # a variant recipe: the parent's recipe with these keys replaced
        if parent == name:
            raise CardiobenchError(f"{files[name]}: a baseline cannot extend itself")
        node = OmegaConf.merge(load_baseline(parent), node)
    validate_baseline(files[name], node)
    return node


def load_task(name: str) -> DictConfig:
    path = CONF_DIR / "task" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))
        raise CardiobenchError(f"unknown task {name!r}; known: {', '.join(known)}")
    node = OmegaConf.load(path)
    node.pop("defaults", None)
    schema = OmegaConf.structured(TaskSchema)
    merged = OmegaConf.merge(schema, node)
    if merged.main_score not in merged.metrics:
        raise CardiobenchError(f"{path}: main_score {merged.main_score!r} is not among metrics")
    if merged.main_score_direction not in ("lower", "higher"):
        raise CardiobenchError(f"{path}: main_score_direction must be 'lower' or 'higher'")
    return merged


def task_names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))


_registered = False


def register_configs() -> None:
    """Register schemas and the top-level baseline recipes with Hydra's ConfigStore (once)."""
    global _registered
    if _registered:
        return
    cs = ConfigStore.instance()
    cs.store(name="schema", node=RootSchema)
    cs.store(group="task", name="task_schema", node=TaskSchema)
    for name in baseline_files():
        cs.store(group="baseline", name=name, node=load_baseline(name), package="_global_")
    _registered = True


def resolve(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """Merge the profile's section of the baseline recipe, then re-apply the user's overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    profile = cfg.profile.name
    sections = cfg.profiles or {}
    if profile not in sections:
        raise CardiobenchError(f"baseline {cfg.baseline.name!r} has no recipe for profile {profile!r}")
    if cfg.baseline.task != cfg.task.name:
        raise CardiobenchError(
            f"baseline {cfg.baseline.name!r} is for task {cfg.baseline.task!r}, not {cfg.task.name!r}")
    OmegaConf.set_struct(cfg, False)  # a profile may add keys the published recipe lacks (model.layers)
    out = OmegaConf.merge(cfg, sections[profile])
    OmegaConf.set_struct(out, False)
    parser = OverridesParser.create()
    for o in parser.parse_overrides(overrides):
        key = o.key_or_group
        if o.is_delete() or key.startswith("hydra") or key in ("task", "baseline", "profile"):
            continue
        OmegaConf.update(out, key, o.value(), merge=True, force_add=True)
    out.pop("profiles")
    return out
