"""Metric regression gate (``cardiobench check``) against a stored reference result.

A reference file (``leaderboards/reference/<task>.json``) holds the primary metric of a reference
run with its CI and a tolerance. A run *regresses* when its primary metric is worse than the
reference's one-sided bound: for a lower-is-better metric, value > high + tolerance; for a
higher-is-better one, value < low - tolerance. The CI's far end is the bound because a rerun on
the same data can land anywhere in it; the tolerance absorbs float differences between CPUs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .config import load_task
from .errors import CardiobenchError
from .io import write_json
from .runs import Run, now_iso


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    lines: list[str]


def _primary(run: Run) -> tuple[str, str, dict]:
    cfg = run.config()
    task = load_task(cfg.task.name)
    m = run.metrics().get(task.main_score)
    if not run.finished:
        raise CardiobenchError(f"{run.path}: the run is not finished (status {run.manifest().get('status')!r})")
    if not m or m.get("value") is None:
        raise CardiobenchError(f"{run.metrics_file}: no value for the primary metric {task.main_score!r}")
    return task.name, task.main_score_direction, m


def load_reference(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise CardiobenchError(f"{p}: reference file not found (make one with `cardiobench check RUN --reference {p} "
                               f"--write-reference`)")
    try:
        ref = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise CardiobenchError(f"{p}: not valid JSON ({exc})") from None
    for key in ("task", "metric", "direction", "value", "low", "high", "tolerance"):
        if key not in ref:
            raise CardiobenchError(f"{p}: reference lacks '{key}'")
    return ref


def check(run: Run, reference: str | Path) -> CheckResult:
    """Compare a run's primary metric with the reference; ``ok`` is False on a significant regression."""
    ref = load_reference(reference)
    task, direction, m = _primary(run)
    if task != ref["task"]:
        raise CardiobenchError(f"{run.path} is task {task!r} but {reference} is for task {ref['task']!r}")
    manifest = run.manifest()
    lines = []
    fp = manifest.get("data", {}).get("fingerprint")
    if ref.get("data_fingerprint") and fp != ref["data_fingerprint"]:
        lines.append(f"warning: data fingerprint {fp} differs from the reference's {ref['data_fingerprint']}: "
                     "the test sets may differ; regenerate the reference if the data changed on purpose")
    value, tol = float(m["value"]), float(ref["tolerance"])
    if direction == "lower":
        bound = ref["high"] + tol
        ok = value <= bound
        worse_by = value - ref["value"]
    else:
        bound = ref["low"] - tol
        ok = value >= bound
        worse_by = ref["value"] - value
    desc = (f"{ref['metric']} = {value:.4g} [{m.get('low', float('nan')):.4g}, {m.get('high', float('nan')):.4g}] vs "
            f"reference {ref['value']:.4g} [{ref['low']:.4g}, {ref['high']:.4g}] ({direction} is better, "
            f"tolerance {tol:g}, bound {bound:.4g})")
    if ok:
        lines.append(f"OK: {desc}")
    else:
        lines.append(f"REGRESSION: {desc}; worse than the reference by {worse_by:.4g} "
                     f"({100 * worse_by / abs(ref['value']):.1f} %), beyond its one-sided bound by "
                     f"{abs(value - bound):.4g}")
    return CheckResult(ok, lines)


def write_reference(run: Run, path: str | Path, tolerance: float, command: str) -> dict:
    """Store ``run``'s primary metric as the reference for its task."""
    task, direction, m = _primary(run)
    manifest = run.manifest()
    ref = dict(task=task, metric=load_task(task).main_score, direction=direction, value=m["value"], low=m["low"],
               high=m["high"], level=m.get("level"), method=m.get("method"), n=m.get("n"), tolerance=tolerance,
               baseline=manifest.get("baseline"), profile=manifest.get("profile"), seed=manifest.get("seed"),
               data_fingerprint=manifest.get("data", {}).get("fingerprint"),
               is_twin=manifest.get("data", {}).get("is_twin"), git_commit=manifest.get("git_commit"),
               created=now_iso(), regenerate=command)
    write_json(Path(path), ref)
    return ref
