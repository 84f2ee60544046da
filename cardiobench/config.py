"""Configuration: dataclass schemas in Hydra's ConfigStore, task specs, baseline recipes, resolution.

The one place each default lives: the generic sections (``train``, ``data``, ``ci``, ``profile``)
in the schemas below; a task's own sections (``clip``, ``image``, ``eval``) in its spec's
``config_defaults``. Task specs live in their family's folder (``cardiobench/tasks/<family>/<task>.yaml``).
Baselines live in the top-level ``baselines/<family>/`` folders (one YAML per recipe, plus include-path
folders) and are registered as the Hydra config group ``baseline``, each merged
over its task's ``config_defaults``. A recipe holds the published (``paper``) settings at top level
and per-profile deviations under ``profiles.<name>``, registered as the group ``recipe`` and chosen by
interpolation in ``conf/config.yaml``: Hydra composes task, recipe, its profile section and the
user's overrides once, in that order (:func:`compose`). An override of a key the config does not have
is one clear error naming the nearest valid key (:func:`check_overrides`), never an added key.
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field, make_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import families, plugins
from .errors import CardiobenchError
from .spec import TaskSpec, TaskSpecSchema, from_config

PACKAGE_DIR = Path(__file__).resolve().parent
CONF_DIR = PACKAGE_DIR / "conf"
PROJECT_DIR = Path(os.environ.get("CARDIOBENCH_HOME", PACKAGE_DIR.parent))
BASELINES_DIR = PROJECT_DIR / "baselines"
LEADERBOARDS_DIR = PROJECT_DIR / "leaderboards"
TEMPLATES_DIR = PROJECT_DIR / "report_templates"


@dataclass
class TrainSchema:
    epochs: int = 1
    batch_size: int = 8
    optimizer: str = "sgd"            # sgd | adamw
    lr: float = 1.0e-3
    head_lr: Optional[float] = None   # models with param_groups(): the head's lr, ``lr`` for the backbone
    momentum: float = 0.9
    weight_decay: float = 1.0e-4
    schedule: str = "step"            # step (StepLR) | cosine (per epoch) | warmup_cosine | onecycle (per step)
    #                                   | cosine_restarts (CosineAnnealingWarmRestarts, per epoch)
    lr_step_period: Optional[int] = None  # step: StepLR's period; cosine_restarts: the first cycle's epochs (T_0)
    lr_gamma: float = 0.1
    warmup_fraction: float = 0.0
    accumulate: int = 1               # optimiser step every ``accumulate`` batches
    grad_clip: Optional[float] = None
    patience: Optional[int] = None    # early stopping: epochs without a better selection score
    val_every: int = 1                # validate (and select, and count patience) every this many epochs
    label_smoothing: float = 0.0      # classification/segmentation losses that take it
    channels_last: bool = False       # 2D models on CUDA: NHWC memory format
    sync_bn: bool = False             # torchrun on GPUs: SyncBatchNorm (BatchNorm statistics over all ranks)
    loss: str = "mse"
    output_bias: Any = None           # "train_mean", a number, or null
    select_by: str = "val_loss"       # the epoch kept as best.pt: val_loss or a task's val_* metric
    select_mode: str = "min"          # min | max
    num_workers: int = 0


@dataclass
class TwinSchema:
    n: int = 500
    seed: int = 0


@dataclass
class DataSchema:
    root: Optional[str] = None         # the real dataset's folder; null -> the synthetic twin
    cache_dir: str = "${oc.env:CARDIOBENCH_CACHE,${oc.env:HOME,.}/.cache/cardiobench}"
    workers: int = 2
    decoded_cache: bool = True         # preprocess each sample once into <cache_dir>/arrays/ (memory-mapped)
    twin: TwinSchema = field(default_factory=TwinSchema)


@dataclass
class CISchema:
    mode: str = "default"   # default: 95 % BCa, 9 999 resamples, patients resampled; echonet: the original
    level: float = 0.95     #   code's 5th-95th percentiles of 10 000 resamples (a 90 % interval), labelled so
    method: str = "bca"
    n_resamples: int = 9999


@dataclass
class ProfileSchema:
    name: str = "???"
    device: str = "cpu"        # cpu | cuda | auto
    threads: Optional[int] = None
    amp: bool = False
    deterministic: bool = True


@dataclass
class RootSchema:
    seed: int = 0
    resume: bool = False
    run_dir: Optional[str] = None   # default: <runs_root>/<task>/<baseline>/<profile>-s<seed>-<timestamp>
    runs_root: str = "runs"
    site_dir: Optional[str] = None  # the leaderboard site; default leaderboards/site in the working folder
    progress: bool = True
    report: bool = True             # render the task's leaderboard page at the end of the run
    data: DataSchema = field(default_factory=DataSchema)
    ci: CISchema = field(default_factory=CISchema)
    train: TrainSchema = field(default_factory=TrainSchema)
    task: Any = None
    profile: ProfileSchema = field(default_factory=ProfileSchema)
    baseline: Any = None
    model: Any = None
    # A task's own sections (clip, image, eval, ...) are not listed here: each task's schema extends
    # this one with the sections its spec's config_defaults declare (:func:`task_schema`).


def _typed(name: str, value: Any) -> tuple[Any, Any]:
    """(type, dataclass field) of one setting, typed by its declared default: a mapping is a nested
    schema, a number, string or flag its own type, a list anything; each may be set to null (a setting
    such as ``eval.segmentation_run: auto`` is switched off that way)."""
    if isinstance(value, dict):
        schema = make_dataclass(f"{name.title().replace('.', '').replace('_', '')}Schema",
                                [(k, *_typed(f"{name}.{k}", v)) for k, v in value.items()])
        return Optional[schema], field(default_factory=schema)
    if isinstance(value, bool) or isinstance(value, (int, float, str)):
        return Optional[type(value)], field(default=value)
    if value is None:
        return Optional[Any], field(default=None)
    return Any, field(default_factory=lambda v=value: list(v) if isinstance(v, list) else v)


def task_schema(spec: TaskSpec) -> type:
    """The root schema of a run of ``spec``'s task: :class:`RootSchema` plus the task's own sections,
    each typed from the defaults its spec declares (``clip.frames=abc`` is refused, an unknown key too)."""
    sections = [(k, *_typed(k, v)) for k, v in spec.config_defaults.items()]
    return make_dataclass(f"{spec.name.title().replace('_', '')}RootSchema", sections, bases=(RootSchema,))


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take (None: unbounded on that side; ``*_open``: the end excluded)."""

    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, v: float) -> bool:
        return ((self.low is None or (v > self.low if self.low_open else v >= self.low))
                and (self.high is None or (v < self.high if self.high_open else v <= self.high)))

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        return f"{'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


_SEED = Range(0, 2**32 - 1)     # numpy's and torch's seeds
_POSITIVE, _COUNT, _NON_NEGATIVE = Range(0, low_open=True), Range(1), Range(0)
_FRACTION = Range(0, 1, high_open=True)
# The range of each numeric setting of the schemas above, checked by :func:`check_ranges` when a config
# is resolved: a negative epoch count or a 150 % interval is one line naming the key, not a late crash
# or a run that silently did nothing. Null (an optional setting left unset) is always allowed.
RANGES: dict[str, Range] = {
    "seed": _SEED, "data.twin.seed": _SEED, "data.twin.n": _COUNT, "data.workers": _NON_NEGATIVE,
    "ci.level": Range(0, 1, low_open=True, high_open=True), "ci.n_resamples": _COUNT,
    "train.epochs": _NON_NEGATIVE,  # 0: predict with the initial (or loaded) weights, no training
    "train.batch_size": _COUNT, "train.lr": _POSITIVE, "train.head_lr": _POSITIVE, "train.momentum": Range(0, 1),
    "train.weight_decay": _NON_NEGATIVE, "train.lr_step_period": _COUNT, "train.lr_gamma": _POSITIVE,
    "train.warmup_fraction": _FRACTION, "train.accumulate": _COUNT, "train.grad_clip": _POSITIVE,
    "train.patience": _NON_NEGATIVE, "train.val_every": _COUNT, "train.label_smoothing": _FRACTION,
    "train.num_workers": _NON_NEGATIVE, "profile.threads": _COUNT,
}


def check_ranges(cfg: DictConfig) -> None:
    """CardiobenchError naming the key, its value and the allowed range for a setting outside :data:`RANGES`."""
    for key, allowed in RANGES.items():
        v = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue  # unset, or a type error that the schema reports itself
        if v != v or v not in allowed:  # v != v: NaN
            raise CardiobenchError(f"{key}={v} is out of range: {key} must be {_phrase(allowed)}")


def _phrase(r: Range) -> str:
    return str(r) if r.high is None else f"in {r}"


REQUIRED_BASELINE_KEYS = ("name", "task", "title", "citation")


# ----------------------------------------------------------------------------- task specs


def task_files() -> dict[str, Path]:
    """``{name: spec file}``: the families' specs, then include-path ones (a name both define is refused)."""
    out = families.spec_files()
    for name, p in plugins.yaml_files("task").items():
        if name in out:
            raise CardiobenchError(f"task {name!r} is defined twice: {out[name]} and {p}; rename one of them")
        out[name] = p
    return out


def task_names() -> list[str]:
    return sorted(task_files())


def _task_node(name: str) -> tuple[Path, DictConfig]:
    files = task_files()
    base = name.split(".v")[0]
    if base not in files:
        raise CardiobenchError(f"unknown task {name!r}; known: {', '.join(sorted(files))}")
    node = OmegaConf.load(files[base])
    node.pop("defaults", None)
    return files[base], node


@lru_cache(maxsize=None)
def load_task(name: str) -> TaskSpec:
    """The validated spec of a task (CardiobenchError naming the file and field when invalid)."""
    path, node = _task_node(name)
    spec = from_config(node, path)
    if spec.name != path.stem:
        raise CardiobenchError(f"{path}: name {spec.name!r} differs from the file name")
    return spec


def spec_of(cfg: DictConfig) -> TaskSpec:
    """A run's task spec: the registered one of that name and version, else the run's own copy."""
    name, version = str(cfg.task.name), int(cfg.task.get("version", 1))
    if name in task_files():
        spec = load_task(name)
        if spec.version == version:
            return spec
    return from_config(cfg.task, f"task {name!r} (v{version}) in the run's config.yaml")


# ----------------------------------------------------------------------------- baselines


@lru_cache(maxsize=None)
def baseline_files() -> dict[str, Path]:
    """``{name: recipe file}``: ``baselines/<family>/*.yaml``, then include-path ones (a name defined
    twice is refused, naming both files)."""
    out: dict[str, Path] = {}
    found = [*sorted(BASELINES_DIR.rglob("*.yaml")), *plugins.yaml_files("baselines").values()]
    for p in found:
        if p.stem in out:
            raise CardiobenchError(f"baseline {p.stem!r} is defined twice: {out[p.stem]} and {p}; rename one of them")
        out[p.stem] = p
    return out


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
    if "published" in meta:
        raise CardiobenchError(f"{path}: baseline.published: published numbers live in leaderboards/published.yaml "
                               f"(or an include folder's published.yaml), one schema for all; see "
                               f"docs/published-numbers.md")
    for key in ("model", "train", "profiles"):
        if key not in node:
            raise CardiobenchError(f"{path}: no '{key}:' section")
    train_keys = set(TrainSchema.__dataclass_fields__)
    for where, section in [("train", node.train), *((f"profiles.{p}.train", s.get("train") or {})
                                                    for p, s in node.profiles.items())]:
        unknown = [k for k in section if k not in train_keys]
        if unknown:
            raise CardiobenchError(f"{path}: {where}.{unknown[0]} is not a training setting"
                                   f"{_suggest(unknown[0], sorted(train_keys))}")


@lru_cache(maxsize=None)
def load_baseline(name: str) -> DictConfig:
    """A recipe merged over its task's ``config_defaults`` (and over its parent's, for ``extends``)."""
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
    defaults = OmegaConf.create(load_task(str(node.baseline.task)).config_defaults)
    return OmegaConf.merge(defaults, node)


# ----------------------------------------------------------------------------- Hydra


_registered = False


def register_configs() -> None:
    """Register schemas, task specs and baseline recipes with Hydra's ConfigStore (once).

    A recipe is two config groups: ``baseline/<name>`` (its published settings, over its task's
    ``config_defaults``) and ``recipe/<name>_<profile>`` (its ``profiles.<profile>`` section), which
    the primary config selects by interpolation (``recipe: ${baseline}_${profile}``, Hydra's
    specialising configs), so that Hydra's one composition merges task, recipe, profile section and
    the user's overrides, in that order."""
    global _registered
    if _registered:
        return
    cs = ConfigStore.instance()
    for name, path in task_files().items():  # every spec the same way: the schema, then the file
        node = OmegaConf.load(path)
        node.pop("defaults", None)
        cs.store(group="task", name=name, node=OmegaConf.merge(OmegaConf.structured(TaskSpecSchema), node))
        cs.store(group="schema", name=name, node=task_schema(load_task(name)), package="_global_")
    for name in baseline_files():
        node = load_baseline(name).copy()
        profiles = node.pop("profiles")
        cs.store(group="baseline", name=name, node=node, package="_global_")
        for profile, section in profiles.items():
            cs.store(group="recipe", name=f"{name}_{profile}", node=section, package="_global_")
    _registered = True


def _hydra_compose(overrides: list[str]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            return hydra_compose("config", overrides=overrides)
        except (HydraException, OmegaConfBaseException) as exc:  # a bad value: one line, not Hydra's page
            why = str(exc).splitlines()[0]
            if exc.__cause__ is not None and str(exc.__cause__).strip():
                why += f": {str(exc.__cause__).strip().splitlines()[0]}"
            if why.startswith("Ambiguous value for argument"):  # a comma: Hydra reads a sweep
                why += quote_hint(why.partition("'")[2].rpartition("'")[0])
            raise CardiobenchError(f"invalid override: {why}") from None


def quote_hint(text: str) -> str:
    """'; quote the value: ...' with the exact argument that passes ``key=value`` through Hydra's override
    grammar when the value holds what the grammar reserves (spaces, parentheses, '=', ',', brackets, quotes)."""
    import shlex

    key, eq, value = text.partition("=")
    if not eq or not key or value[:1] in ("'", '"'):
        return ""
    return (f"; quote the value for Hydra's override grammar (and the whole argument for the shell): "
            f"{shlex.quote(f'{key}={hydra_quote(value)}')}")


def hydra_quote(value: str) -> str:
    """``value`` as a quoted string of Hydra's override grammar, read back exactly as given."""
    # a backslash escapes only a quote or the string's end, so only those runs are doubled
    return '"' + re.sub(r'(\\*)("|$)', lambda m: m[1] * 2 + ('\\"' if m[2] else ""), value) + '"'


def _groups(task: str, baseline: str | None, profile: str) -> list[str]:
    return [f"task={task}", f"baseline={baseline or load_task(task).reference_baseline}", f"profile={profile}"]


def check_recipe(task: str, baseline: str | None, profile: str) -> str:
    """The baseline (default: the task's reference) after checking that it is the task's and has a section
    for ``profile``: one line naming what is wrong, before Hydra composes anything."""
    spec = load_task(task)
    baseline = baseline or spec.reference_baseline
    node = load_baseline(baseline)
    if node.baseline.task != spec.name:
        raise CardiobenchError(f"baseline {baseline!r} is for task {node.baseline.task!r}, not {spec.name!r}")
    if profile not in node.profiles:
        raise CardiobenchError(f"baseline {baseline!r} has no recipe for profile {profile!r} "
                               f"(it has {', '.join(node.profiles)})")
    return baseline


def compose(task: str, baseline: str | None = None, profile: str = "smoke",
            overrides: list[str] | None = None) -> DictConfig:
    """The resolved config of ``baseline`` (default: the task's reference) under ``profile`` with
    ``overrides``, composed once by Hydra (CardiobenchError on an unknown key, naming the nearest one,
    or on a bad value)."""
    baseline = check_recipe(task, baseline, profile)
    base = _groups(task, baseline, profile)
    overrides = [o for o in overrides or [] if not o.startswith("--")]
    override_keys(overrides)  # a malformed override: one line, before composing
    refuse_sweeps(overrides)
    try:
        cfg = _hydra_compose(base + overrides)
    except CardiobenchError:
        check_overrides(plain_config(task, baseline, profile), overrides)  # a misspelled key: named, nearest one
        raise
    return finish(cfg)


def plain_config(task: str, baseline: str | None, profile: str) -> DictConfig:
    """The composed config without any override: the keys an override may name."""
    return _hydra_compose(_groups(task, baseline, profile))


def finish(cfg: DictConfig) -> DictConfig:
    """A composed config made ready to run: open for the run's own additions, every range checked."""
    OmegaConf.set_struct(cfg, False)
    check_ranges(cfg)
    return cfg


def _dotted_keys(node: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(node, DictConfig):
        for k in node.keys():
            key = f"{prefix}{k}"
            out.append(key)
            out.extend(_dotted_keys(node._get_node(k), f"{key}."))
    return out


def _suggest(key: str, candidates: list[str]) -> str:
    near = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    return f"; did you mean {near[0]!r}?" if near else ""


def override_keys(overrides: list[str]) -> list[tuple[str, str]]:
    """(prefix, key) of each key=value override ('', '+', '++' or '~')."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for text in overrides:
        if text.startswith("--"):
            continue
        try:
            o = OverridesParser.create().parse_override(text)
        except Exception as exc:  # Hydra's grammar errors are long; one line is enough
            raise CardiobenchError(f"cannot parse override {text!r}: {str(exc).splitlines()[0]}"
                                   f"{quote_hint(text)}") from None
        prefix = "++" if text.startswith("++") else "+" if text.startswith("+") else "~" if text.startswith("~") else ""
        out.append((prefix, o.key_or_group))
    return out


def refuse_sweeps(overrides: list[str]) -> None:
    """A single run: an override that Hydra's grammar reads as several values (``a,b``, ``range(3)``) is
    one line naming it, with its quoted form, never a silent sweep or Hydra's page."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for text in overrides:
        if not text.startswith("--") and parser.parse_override(text).is_sweep_override():
            raise CardiobenchError(f"invalid override: {text!r} reads as several values (a sweep: --multirun runs "
                                   f"one job each){quote_hint(text)}")


GROUPS = ("task", "baseline", "profile")


def check_overrides(full: DictConfig, overrides: list[str]) -> None:
    """Refuse any override of a key the resolved config does not have (a typo), naming the nearest one.

    ``+key=value`` (Hydra's explicit append) may add a key; ``hydra.*`` keys are Hydra's own.
    """
    keys = _dotted_keys(full)
    known = set(keys)
    for prefix, key in override_keys(overrides):
        if prefix in ("+", "++") or key.startswith("hydra") or key in GROUPS:
            continue
        if key not in known:
            raise CardiobenchError(f"unknown config key {key!r}{_suggest(key, keys)} "
                                   f"(+{key}=... adds a new key on purpose)")
