"""The leaderboard's figures by kind: a task spec lists ``figures: [{kind, args}]`` and each kind
draws from a run folder alone (predictions of the primary variant, metrics.json, artifacts).

Generic kinds (here): ``regression`` (predicted vs true, Bland-Altman, ROC below a threshold, error by range),
``roc`` (a binary target's ROC), ``calibration`` (its reliability diagram), ``forest`` (per-label AUCs with CIs, multilabel tasks),
``segmentation`` (per-sample Dice of each structure, agreement of predicted with true areas),
``robustness_heatmap`` (a column per artifact x severity). A family registers its own kinds with
:func:`figure_kind` in a module it declares (``FIGURES`` in its ``__init__.py``), imported when a page
first needs that kind; this package imports no family.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from .. import families
from ..registry import Registry
from ..runs import Run
from . import plots

Figure = tuple[str, str]  # (title, svg)
KINDS: Registry[Callable[[Run, pd.DataFrame, dict, dict], list[Figure]]] = Registry(
    "figure kind", lambda: families.figures(), hint="a family declares its own in FIGURES")


def figure_kind(name: str) -> Callable:
    return KINDS.decorator(name)


def draw(kind: str, run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """The figures of one kind for one run (an unknown kind draws nothing rather than failing a page)."""
    fn = KINDS.find(kind)
    return fn(run, pred, args, metrics) if fn else []


def _label(values: np.ndarray, args: dict) -> np.ndarray:
    return values < float(args["below"]) if "below" in args else values.astype(bool)


@figure_kind("regression")
def regression(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    y, p = pred[args["target"]].to_numpy(float), pred[args["prediction"]].to_numpy(float)
    unit = args.get("unit", "")
    figs = [("Predicted vs true", plots.predicted_vs_true(y, p, unit)),
            ("Bland-Altman", plots.bland_altman_plot(y, p, unit))]
    if "positive_below" in args:  # a low value means disease: the score is -prediction
        label = y < float(args["positive_below"])
        if 2 <= label.sum() <= len(label) - 2:
            figs.append(("ROC", plots.roc_plot(label, -p, args.get("positive_name", f"< {args['positive_below']}"))))
    if "bins" in args:
        figs.append(("Error by range", plots.per_bin_errors(y, p, list(args["bins"]), unit)))
    return figs


@figure_kind("roc")
def roc(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    label = _label(pred[args["label"]].to_numpy(float), args)
    score = float(args.get("sign", 1)) * pred[args["score"]].to_numpy(float)
    if not 2 <= label.sum() <= len(label) - 2:
        return []
    return [("ROC", plots.roc_plot(label, score, args.get("name", args["label"])))]


@figure_kind("calibration")
def calibration(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """Reliability diagram of a binary target's probability."""
    label = _label(pred[args["label"]].to_numpy(float), args)
    prob = pred[args["score"]].to_numpy(float)
    if len(label) < 2 or not np.isfinite(prob).all():
        return []
    return [(f"Reliability: {args.get('name', args['label'])}",
             plots.reliability_plot(label, prob, args.get("name", args["label"]), int(args.get("bins", 10))))]


@figure_kind("forest")
def forest(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    rows = [(name, metrics[name]) for name in args["metrics"] if (metrics.get(name) or {}).get("value") is not None]
    if not rows:
        return []
    return [(args.get("title", "AUC per label"), plots.forest_plot(rows, args.get("xlabel", "AUC")))]


@figure_kind("segmentation")
def segmentation(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """Per-sample Dice of each structure with the pooled Dice, and predicted vs true area agreement."""
    structures = args["structures"]
    dice = {s: (2 * pred[c["inter"]] / (pred[c["pred"]] + pred[c["truth"]])).to_numpy(float)
            for s, c in structures.items()}
    pooled = {s: float(2 * pred[c["inter"]].sum() / (pred[c["pred"]].sum() + pred[c["truth"]].sum()))
              for s, c in structures.items()}
    true = np.concatenate([pred[c["truth"]] for c in structures.values()]).astype(float)
    area = np.concatenate([pred[c["pred"]] for c in structures.values()]).astype(float)
    unit = args.get("unit", "area (px)")
    return [(f"Dice per {args.get('per_sample', 'sample')}", plots.dice_by_sample(dice, pooled)),
            (f"{unit.split(' (')[0]}: Bland-Altman", plots.bland_altman_plot(true, area, unit))]


@figure_kind("robustness_heatmap")
def robustness_heatmap(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """Mean of a column per artifact x severity, each cell annotated with its change from clean."""
    cells = (metrics.get(args.get("metric", "robustness")) or {}).get("cells") or {}
    if not cells:
        return []
    col = args.get("column", "dice")
    arts = list(cells)
    sevs = list(dict.fromkeys(s for a in arts for s in cells[a]))
    vals = np.full((len(arts), len(sevs)), np.nan)
    notes = [["" for _ in sevs] for _ in arts]
    for i, a in enumerate(arts):
        for j, s in enumerate(sevs):
            c = (cells[a].get(s) or {}).get(col)
            if c:
                vals[i, j] = c["value"]
                notes[i][j] = f"{c['value']:.3f}\n({c['change']:+.3f})"
    return [(f"Robustness: {col} per artifact and severity (change from clean)",
             plots.heatmap(vals, arts, sevs, f"{col} under artifacts", col, notes))]
