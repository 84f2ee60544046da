"""The task spec: a task's declarative protocol (``cardiobench/tasks/<family>/<name>.yaml``), validated on load.

Everything after prediction (evaluate, compare, external predictions, check, report) is driven by
the spec alone, so those steps need no task code and no torch. A spec says

* what a row of ``predictions.csv`` is (``row_keys``), which column holds the patient (``cluster``,
  resampled as a whole by every bootstrap), and which column, if any, names an evaluation variant
  (``variant``: echo's ``mode``, ACDC's ``artifact``; its first value is the primary one);
* the targets, each with its kind, prediction column and the range its predictions can take
  (``range: [0, 100]`` for a percentage, ``[0, 1]`` for a probability, ``[0, null]`` one-sided):
  evaluate warns about predictions outside it;
* the metrics: each a function from the metric registry (:mod:`cardiobench.evaluation.registry`)
  with its arguments, direction, the paired test used to compare two runs, and a written definition;
* the main score, the figures (by kind), the external-predictions schema, run artifacts, the
  check tolerance and the reference baseline;
* ``config_defaults``: the task's own config sections (e.g. ``clip``, ``eval``), the one place
  their defaults live.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import CardiobenchError

TARGET_KINDS = ("regression", "binary", "multilabel", "segmentation")
DIRECTIONS = ("lower", "higher")
EXTERNAL_KINDS = ("csv", "masks")


@dataclass
class TargetSpec:
    kind: str
    prediction: Optional[str] = None  # the prediction column (regression, binary)
    unit: str = ""
    description: str = ""
    range: Optional[list[Optional[float]]] = None  # [low, high] a prediction can take (null: unbounded)


@dataclass
class MetricSpec:
    fn: str                            # a metric-registry name, or "package.module:function"
    args: dict[str, Any] = field(default_factory=dict)
    direction: Optional[str] = None    # lower | higher; None for descriptive entries
    test: Optional[str] = None         # how two runs are compared (None: not compared)
    definition: str = ""
    variants: str = "primary"          # primary | all | a comma-separated list of variant values
    #                                    | table (once, on every row of every variant: e.g. robustness)
    optional: bool = False             # computed only when its columns are in the predictions
    headline: bool = False             # a column of the leaderboard table


@dataclass
class FigureSpec:
    kind: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class SubgroupSpec:
    """A grouping the data carry (a column of predictions.csv): the page reports the main score per
    level with its interval and a test of heterogeneity."""

    column: str
    name: str = ""                     # in words ("pathology group"); default: the column
    bins: Optional[list[float]] = None  # numeric columns: band edges (e.g. ages [0, 50, 65, 200])
    note: str = ""


@dataclass
class ExternalSpec:
    kind: str = "csv"                  # csv | masks
    columns: dict[str, str] = field(default_factory=dict)  # prediction column -> what it holds
    scorer: Optional[str] = None       # masks: "package.module:function(folder, samples, root) -> rows"
    key: Optional[str] = None          # csv: the column naming each row (default: the first row key)
    note: str = ""
    rename: dict[str, str] = field(default_factory=dict)  # csv: file column -> predictions.csv column
    #                                    (CT-CLIP's "VolumeName" -> sample_id, "Cardiomegaly" -> cardiomegaly_prob)


@dataclass
class TaskSpecSchema:
    """The YAML schema (Hydra's ConfigStore holds it as ``task/task_schema``)."""

    name: str = "???"
    version: int = 1
    format: str = "???"
    description: str = ""
    split: str = "TEST"                # the scored split
    splits: list[str] = field(default_factory=lambda: ["TRAIN", "VAL", "TEST"])
    samples: str = "samples"           # what a row's sample is, in words ("videos")
    row_keys: list[str] = field(default_factory=lambda: ["sample_id"])
    cluster: str = "patient_id"
    variant: Optional[str] = None
    targets: dict[str, TargetSpec] = field(default_factory=dict)
    metrics: dict[str, MetricSpec] = field(default_factory=dict)
    main_score: str = "???"
    figures: list[FigureSpec] = field(default_factory=list)
    external: Optional[ExternalSpec] = None
    artifacts: list[str] = field(default_factory=list)
    tolerance: float = 0.0             # check: the largest tolerated worsening of the main score
    reference_baseline: str = "???"
    config_defaults: dict[str, Any] = field(default_factory=dict)
    subgroups: list[SubgroupSpec] = field(default_factory=list)  # per-level tables of the main score
    modes: list[str] = field(default_factory=list)  # the values ``variant`` takes (the protocols this task
    #                                    runs); a published number of another mode is never compared
    preprocess: Optional[str] = None   # the config key whose value the format's preprocess_config takes
    #                                    (clip.size, image.size, or a whole section such as image)


@dataclass(frozen=True)
class TaskSpec:
    """A validated task spec (plain Python values, no OmegaConf nodes)."""

    name: str
    version: int
    format: str
    description: str
    split: str
    splits: list[str]
    samples: str
    row_keys: list[str]
    cluster: str
    variant: str | None
    targets: dict[str, TargetSpec]
    metrics: dict[str, MetricSpec]
    main_score: str
    figures: list[FigureSpec]
    external: ExternalSpec | None
    artifacts: list[str]
    tolerance: float
    reference_baseline: str
    config_defaults: dict[str, Any]
    preprocess: str | None = None
    modes: list[str] = field(default_factory=list)
    subgroups: list[SubgroupSpec] = field(default_factory=list)

    @property
    def protocols(self) -> list[str]:
        """The evaluation protocols a run of this task can have: ``modes``, or ``standard`` without a variant."""
        return list(self.modes) if self.variant else ["standard"]

    @property
    def main_score_direction(self) -> str:
        return self.metrics[self.main_score].direction

    @property
    def headline(self) -> list[str]:
        """The metrics shown as table columns: the headline ones, main score first."""
        names = [m for m, s in self.metrics.items() if s.headline]
        return [self.main_score, *[m for m in names if m != self.main_score]]

    @property
    def compared(self) -> dict[str, MetricSpec]:
        """Metrics with a paired test: what compare, check and the leaderboard's p-values test."""
        return {m: s for m, s in self.metrics.items() if s.test}

    @property
    def definitions(self) -> dict[str, str]:
        return {m: s.definition for m, s in self.metrics.items() if s.definition and not m.startswith("_")}

    def prediction_columns(self) -> list[str]:
        return [t.prediction for t in self.targets.values() if t.prediction]


def _error(where: str | Path, msg: str) -> CardiobenchError:
    return CardiobenchError(f"{where}: {msg}")


def from_config(node: DictConfig | dict, where: str | Path = "task spec") -> TaskSpec:
    """Validate a task spec (a YAML node or a run's ``config.yaml`` task section)."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(TaskSpecSchema), node)
        raw = OmegaConf.to_container(merged, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        msg = str(exc).splitlines()[0]
        raise _error(where, f"invalid task spec ({msg})") from None
    targets = {k: TargetSpec(**v) for k, v in raw["targets"].items()}
    metrics = {k: MetricSpec(**v) for k, v in raw["metrics"].items()}
    spec = TaskSpec(**{**raw, "targets": targets, "metrics": metrics,
                       "figures": [FigureSpec(**f) for f in raw["figures"]],
                       "subgroups": [SubgroupSpec(**g) for g in raw["subgroups"]],
                       "external": ExternalSpec(**raw["external"]) if raw["external"] else None})
    validate(spec, where)
    return spec


def validate(spec: TaskSpec, where: str | Path) -> None:
    """The cross-field rules a schema cannot say; CardiobenchError naming the file and the field."""
    if not spec.targets:
        raise _error(where, "targets: at least one target is needed")
    for name, t in spec.targets.items():
        if t.kind not in TARGET_KINDS:
            raise _error(where, f"targets.{name}.kind must be one of {', '.join(TARGET_KINDS)}, not {t.kind!r}")
        _validate_range(where, name, t)
    if spec.main_score not in spec.metrics:
        raise _error(where, f"main_score {spec.main_score!r} is not among metrics ({', '.join(spec.metrics)})")
    for name, m in spec.metrics.items():
        if m.direction is not None and m.direction not in DIRECTIONS:
            raise _error(where, f"metrics.{name}.direction must be 'lower' or 'higher', not {m.direction!r}")
        if m.test and m.direction is None:
            raise _error(where, f"metrics.{name} has a paired test but no direction")
    main = spec.metrics[spec.main_score]
    if main.direction is None or not main.test:
        raise _error(where, f"main_score {spec.main_score!r} needs a direction and a paired test (check uses both)")
    if spec.external is not None and spec.external.kind not in EXTERNAL_KINDS:
        raise _error(where, f"external.kind must be one of {', '.join(EXTERNAL_KINDS)}, not {spec.external.kind!r}")
    if spec.external is not None and spec.external.kind == "masks" and not spec.external.scorer:
        raise _error(where, "external.kind 'masks' needs external.scorer (module:function scoring a mask folder)")
    if spec.split not in spec.splits:
        raise _error(where, f"split {spec.split!r} is not one of splits ({', '.join(spec.splits)})")
    if spec.tolerance < 0:
        raise _error(where, "tolerance must be >= 0")


def _validate_range(where: str | Path, name: str, t: TargetSpec) -> None:
    if t.range is None:
        return
    if len(t.range) != 2 or all(v is None for v in t.range):
        raise _error(where, f"targets.{name}.range must be [low, high] (null for an open end), not {t.range}")
    low, high = t.range
    if low is not None and high is not None and not low < high:
        raise _error(where, f"targets.{name}.range: low {low} must be below high {high}")
    if not t.prediction:
        raise _error(where, f"targets.{name}.range needs targets.{name}.prediction (the column it bounds)")


def spec_fields() -> list[str]:
    return [f.name for f in fields(TaskSpecSchema)]
