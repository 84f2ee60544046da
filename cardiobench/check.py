"""Metric regression gate (``cardiobench check``) against a stored reference run.

A reference is two files in ``leaderboards/reference/``: ``<task>.json`` (the primary metric of a
reference run, its CI, the data fingerprint and a tolerance) and ``<task>.predictions.csv`` (that
run's predictions of the primary mode). A run *regresses* when, on the same samples of the same
data, it is

* significantly worse than the reference: a one-sided paired test of the primary metric (paired
  bootstrap for MAE or Dice, paired DeLong for an AUC) rejects at ``alpha`` = 0.05, or
* worse by more than the tolerance (an absolute difference of the primary metric),

and the check fails outright when the data fingerprint differs from the reference's: a run on
another data set (another twin) tests nothing about regressions.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import evaluation
from .alignment import align_predictions, one_variant
from .config import spec_of
from .errors import CardiobenchError
from .io import write_json, write_text
from .runs import Run, now_iso
from .stats import format_p

ALPHA = 0.05
N_RESAMPLES = evaluation.COMPARE_RESAMPLES
REFERENCE_KEYS = ("task", "metric", "direction", "value", "low", "high", "tolerance", "predictions")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    lines: list[str]


def _primary(run: Run):
    spec = spec_of(run.config())
    if not run.finished:
        raise CardiobenchError(f"{run.path}: the run is not finished (status {run.manifest().get('status')!r})")
    m = run.metrics().get(spec.main_score)
    if not m or m.get("value") is None:
        raise CardiobenchError(f"{run.metrics_file}: no value for the primary metric {spec.main_score!r}")
    return spec, m


def predictions_file(reference: str | Path) -> Path:
    """Where the reference's predictions sit: beside the JSON, ``<task>.predictions.csv``."""
    p = Path(reference)
    return p.with_name(f"{p.stem}.predictions.csv")


# what each key of a reference must hold: a hand-edited null or text is named, not a TypeError later
_NUMBER_KEYS = ("value", "low", "high", "tolerance")
_TEXT_KEYS = ("task", "metric", "predictions")


def _validate_reference(p: Path, ref: object) -> None:
    if not isinstance(ref, dict):
        raise CardiobenchError(f"{p}: a reference is a JSON object (regenerate it with --write-reference)")
    for key in REFERENCE_KEYS:
        if key not in ref:
            raise CardiobenchError(f"{p}: reference lacks '{key}' (regenerate it with --write-reference)")
        if ref[key] is None:
            raise CardiobenchError(f"{p}: reference key '{key}' is null (regenerate the reference with "
                                   f"--write-reference, or give '{key}' a value)")
    for key in _NUMBER_KEYS:
        v = ref[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            raise CardiobenchError(f"{p}: reference key '{key}' must be a number, not {v!r}")
    if ref["tolerance"] < 0:
        raise CardiobenchError(f"{p}: reference key 'tolerance' must be >= 0, not {ref['tolerance']!r}")
    for key in _TEXT_KEYS:
        if not isinstance(ref[key], str) or not ref[key]:
            raise CardiobenchError(f"{p}: reference key '{key}' must be a non-empty text, not {ref[key]!r}")
    if ref["direction"] not in ("lower", "higher"):
        raise CardiobenchError(f"{p}: reference key 'direction' must be 'lower' or 'higher', not {ref['direction']!r}")


def load_reference(path: str | Path) -> tuple[dict, pd.DataFrame]:
    """The reference JSON and its predictions; CardiobenchError naming the file when either is unusable."""
    p = Path(path)
    if not p.is_file():
        raise CardiobenchError(f"{p}: reference file not found (make one with `cardiobench check RUN --reference {p} "
                               f"--write-reference`)")
    try:
        ref = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise CardiobenchError(f"{p}: not valid JSON ({exc})") from None
    _validate_reference(p, ref)
    pred_file = p.parent / ref["predictions"]
    if not pred_file.is_file():
        raise CardiobenchError(f"{pred_file}: the reference's predictions are missing (regenerate the reference "
                               f"with --write-reference)")
    try:
        pred = pd.read_csv(pred_file, dtype={"sample_id": str, "patient_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CardiobenchError(f"{pred_file}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    return ref, pred


def check(run: Run, reference: str | Path, alpha: float = ALPHA) -> CheckResult:
    """Gate ``run`` against the reference; ``ok`` is False on a regression or on other data."""
    ref, ref_pred = load_reference(reference)
    spec, _ = _primary(run)
    if spec.name != ref["task"]:
        raise CardiobenchError(f"{run.path} is task {spec.name!r} but {reference} is for task {ref['task']!r}")
    fp = run.manifest().get("data", {}).get("fingerprint")
    if ref.get("data_fingerprint") and fp != ref["data_fingerprint"]:
        return CheckResult(False, [f"DIFFERENT DATA: {run.path} ran on data with fingerprint {fp}, the reference on "
                                   f"{ref['data_fingerprint']}; a run on other data is no regression check "
                                   f"(regenerate the reference if the data changed on purpose)"])
    metric, tol, direction = ref["metric"], float(ref["tolerance"]), ref["direction"]
    try:
        mine, theirs = align_predictions(run.predictions(), ref_pred, spec, str(run.path),
                                         str(predictions_file(reference)))
    except CardiobenchError as exc:
        return CheckResult(False, [f"DIFFERENT SAMPLES: {exc}"])
    # One-sided: H1 is "the run is worse", i.e. run - reference > 0 for an error, < 0 for a score.
    alternative = "greater" if direction == "lower" else "less"
    rows = evaluation.compare(mine, theirs, spec, n_resamples=N_RESAMPLES, alternative=alternative)
    test = next((r for r in rows if r["metric"] == metric), None)
    if test is None:
        raise CardiobenchError(f"task {spec.name!r} has no paired test for its primary metric {metric!r}")
    worse_by = test["diff"] if direction == "lower" else -test["diff"]
    significant = test["p_value"] < alpha
    beyond = worse_by > tol
    desc = (f"{metric} = {test['a']:.4g} vs reference {test['b']:.4g} on the same {len(mine)} samples "
            f"({direction} is better): worse by {worse_by:+.4g} (tolerance {tol:g}); one-sided {test['test']}: "
            f"p = {format_p(test['p_value'], test.get('p_floor'))} (alpha {alpha:g})"
            + (f"; two-sided p = {format_p(test['p_two_sided'], 2 * (test.get('p_floor') or 0) or None)}, as compare "
               f"and the leaderboard report for this pair" if test.get("p_two_sided") is not None else ""))
    if not (significant or beyond):
        return CheckResult(True, [f"OK: {desc}"])
    why = [w for w, hit in (("significantly worse", significant), ("worse by more than the tolerance", beyond)) if hit]
    pct = 100 * worse_by / abs(test["b"]) if test["b"] else float("nan")
    return CheckResult(False, [f"REGRESSION ({' and '.join(why)}): {desc}; worse than the reference by "
                               f"{worse_by:.4g} ({pct:.1f} %)"])


def write_reference(run: Run, path: str | Path, tolerance: float | None, command: str) -> dict:
    """Store ``run``'s primary metric and its primary-variant predictions as the reference for its task
    (``tolerance`` None: the task spec's)."""
    spec, m = _primary(run)
    manifest = run.manifest()
    pred_file = predictions_file(path)
    primary = one_variant(run.predictions(), spec).dropna(axis=1, how="all")  # other variants' columns are empty
    write_text(pred_file, primary.to_csv(index=False, float_format="%.6f"))
    ref = dict(task=spec.name, metric=spec.main_score, direction=spec.main_score_direction, value=m["value"],
               low=m["low"], high=m["high"], level=m.get("level"), method=m.get("method"), n=m.get("n"),
               tolerance=spec.tolerance if tolerance is None else tolerance, predictions=pred_file.name,
               baseline=manifest.get("baseline"), profile=manifest.get("profile"), seed=manifest.get("seed"),
               data_fingerprint=manifest.get("data", {}).get("fingerprint"),
               is_twin=manifest.get("data", {}).get("is_twin"), git_commit=manifest.get("git_commit"),
               created=now_iso(), regenerate=command)
    write_json(Path(path), ref)
    return ref
