"""metrics.json from predictions.csv alone, driven by the task spec (no task code, no torch).

``evaluate(pred, spec, ci)`` checks the table's columns, picks the rows of each evaluation variant
(the first is primary), and computes every metric of the spec from the metric registry, patients
resampled whenever one has several rows. ``compare(a, b, spec, ...)`` runs each compared metric's
paired test on two aligned tables.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import CardiobenchError, DataError
from ..spec import MetricSpec, TaskSpec
from .metrics import Context, get_metric

log = logging.getLogger("cardiobench")

# Resamples of every paired comparison of two runs: `cardiobench compare`, `check` and the leaderboard
# use this one number (and the same seed), so the same pair gets the same p everywhere.
COMPARE_RESAMPLES = 9999


def ci_context(ci: Mapping[str, Any] | None, samples: str = "samples") -> Context:
    """The CI convention: ours (``ci.mode=default``: the ``ci`` section, 95 % BCa and 9 999 resamples by
    default) or a named convention of a family's (``CI_MODES``: e.g. ``echonet``, the original EchoNet
    code's 5th-95th percentiles)."""
    from .. import families
    from ..config import CISchema

    d = CISchema()  # the defaults' one place; a run's config (or an external one) may omit the section
    ci = {"mode": d.mode, "level": d.level, "method": d.method, "n_resamples": d.n_resamples, **dict(ci or {})}
    if ci["mode"] != "default":
        modes = families.ci_modes()
        if ci["mode"] not in modes:
            raise CardiobenchError(f"ci.mode={ci['mode']!r} is not a CI convention; known: "
                                   f"{', '.join(['default', *modes])}")
        return Context(**modes[ci["mode"]], samples=samples)
    return Context(level=float(ci["level"]), method=str(ci["method"]), n_resamples=int(ci["n_resamples"]),
                   samples=samples, label="default")


def required_columns(spec: TaskSpec) -> list[str]:
    return [*spec.row_keys, spec.cluster, "split", *spec.targets]


def check_columns(pred: pd.DataFrame, spec: TaskSpec, source: str = "predictions") -> None:
    missing = [c for c in required_columns(spec) if c not in pred.columns]
    if missing:
        raise DataError(f"{source}: lacks column(s) {', '.join(missing)}")


def _lines(mask: np.ndarray, pred: pd.DataFrame, spec: TaskSpec, limit: int = 5) -> str:
    """Line numbers in the CSV (the header is line 1), each with its row's id."""
    where = np.flatnonzero(mask)
    key = spec.row_keys[0]
    shown = [f"{i + 2} ({pred[key].iloc[i]})" if key in pred.columns else str(i + 2) for i in where[:limit]]
    return ", ".join(shown) + (f" ... ({len(where)} in all)" if len(where) > limit else "")


def check_values(pred: pd.DataFrame, spec: TaskSpec, source: str = "predictions") -> list[str]:
    """Refuse a missing or non-finite prediction (DataError naming ``source``, the line and the column);
    return, and log as warnings, what lies outside a target's declared ``range`` (scored as written:
    an EF of 250 or a probability of 1.3 is a model's bug the user must see, not one we may clip)."""
    warnings = []
    for name, t in spec.targets.items():
        col = t.prediction
        if not col or col not in pred.columns:
            continue
        values = pd.to_numeric(pred[col], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(f"{source}: column {col} has a missing, NaN or non-numeric value on line(s) "
                            f"{_lines(bad, pred, spec)}")
        low, high = t.range or (None, None)
        out = ((values < low) if low is not None else False) | ((values > high) if high is not None else False)
        if np.any(out):
            span = f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
            msg = (f"{source}: column {col} has {int(np.sum(out))} of {len(values)} row(s) outside the range of "
                   f"target {name!r}, {span} (min {values.min():g}, max {values.max():g}; line(s) "
                   f"{_lines(out, pred, spec)}); scored as written")
            log.warning("warning: %s", msg)
            warnings.append(msg)
    return warnings


def variants(pred: pd.DataFrame, spec: TaskSpec) -> list[str]:
    """The evaluation variants present, primary first (file order)."""
    if not spec.variant or spec.variant not in pred.columns:
        return []
    return list(dict.fromkeys(pred[spec.variant].astype(str)))


def rows_of(pred: pd.DataFrame, spec: TaskSpec, variant: str | None) -> pd.DataFrame:
    if variant is None or not spec.variant or spec.variant not in pred.columns:
        return pred
    return pred[pred[spec.variant].astype(str) == variant].reset_index(drop=True)


def groups_of(rows: pd.DataFrame, spec: TaskSpec) -> np.ndarray | None:
    """The patient of each row when some patient has several rows (then patients are resampled)."""
    g = rows[spec.cluster].astype(str)
    return g.to_numpy() if g.duplicated().any() else None


def _applies(m: MetricSpec, rows: pd.DataFrame) -> bool:
    if not m.optional:
        return True
    return all(c in rows.columns and rows[c].notna().all() for c in _columns_of(m.args))


def _columns_of(args: Mapping[str, Any]) -> list[str]:
    cols = [v for k, v in args.items() if k in ("target", "prediction", "std", "label", "score", "column")]
    if "labels" in args:  # multilabel metrics: each label's 0/1 column and its score column
        suffix = args.get("score_suffix", "_prob")
        cols += [c for label in args["labels"] for c in (label, f"{label}{suffix}")]
    return [c for c in cols if isinstance(c, str)]


def _one(rows: pd.DataFrame, spec: TaskSpec, ctx: Context, which: list[tuple[str, MetricSpec]]) -> dict:
    out: dict = {}
    ctx = replace(ctx, groups=groups_of(rows, spec))
    for name, m in which:
        if not _applies(m, rows):
            continue
        try:
            entry = get_metric(m.fn).compute(rows, m.args, ctx)
        except ValueError as exc:  # NaN values, wrong lengths: one clear line naming the metric
            raise DataError(f"predictions: metric {name!r} cannot be computed ({exc})") from None
        except KeyError as exc:
            raise DataError(f"predictions: metric {name!r} needs the column {exc.args[0]!r}, which is missing") from None
        if entry is None:
            continue
        if m.definition and isinstance(entry, dict) and "value" in entry and entry.get("value") is not None:
            entry["definition"] = m.definition
        out[name] = entry
    return out


def evaluate(pred: pd.DataFrame, spec: TaskSpec, ci: Mapping[str, Any] | None = None,
             source: str = "predictions") -> dict:
    """metrics.json content: the primary variant's metrics at top level, every variant under ``by_<variant>``.
    ``source`` names the predictions' file in messages."""
    check_columns(pred, spec, source)
    check_values(pred, spec, source)
    ctx = ci_context(ci, spec.samples)
    vs = variants(pred, spec)
    primary = vs[0] if vs else None
    top = [(n, m) for n, m in spec.metrics.items() if m.variants in ("primary", "all")]
    out = _one(rows_of(pred, spec, primary), spec, ctx, top)
    out.update(_one(pred, spec, ctx, [(n, m) for n, m in spec.metrics.items() if m.variants == "table"]))
    if len(vs) > 1:
        out[f"primary_{spec.variant}"] = primary
        by = {}
        for v in vs:
            which = [(n, m) for n, m in spec.metrics.items()
                     if m.variants == "all" or v in [s.strip() for s in m.variants.split(",")]]
            by[v] = _one(rows_of(pred, spec, v), spec, ctx, which)
        out[f"by_{spec.variant}"] = by
    return out


def compare(a: pd.DataFrame, b: pd.DataFrame, spec: TaskSpec, level: float = 0.95,
            n_resamples: int = COMPARE_RESAMPLES,
            alternative: str = "two-sided") -> list[dict]:
    """Each compared metric's paired test on two aligned tables (same rows, same order): a - b.

    Metrics of the primary variant see its rows; ``table`` metrics see every row both tables share and
    may return several tests (their headline first, then ``name[part]`` rows, e.g. one per artifact).
    """
    va, vb = variants(a, spec), variants(b, spec)
    pa, pb = rows_of(a, spec, va[0] if va else None), rows_of(b, spec, vb[0] if vb else None)
    out = []
    for name, m in spec.compared.items():
        ta, tb = (a, b) if m.variants == "table" else (pa, pb)
        if not _applies(m, ta) or not _applies(m, tb):
            continue
        ctx = Context(level=level, n_resamples=n_resamples, groups=groups_of(ta, spec), samples=spec.samples)
        try:
            r = get_metric(m.fn).compare(ta, tb, m.args, ctx, alternative)
        except KeyError as exc:
            raise DataError(f"predictions: metric {name!r} needs the column {exc.args[0]!r}, which is missing") from None
        for part in r if isinstance(r, list) else [] if r is None else [r]:
            label = part.pop("part", None)  # a table metric's sub-tests: robustness[noise], ...
            out.append(dict(metric=f"{name}[{label}]" if label else name, **part))
    return out
