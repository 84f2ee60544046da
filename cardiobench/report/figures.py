"""The leaderboard's figures by kind: a task spec lists ``figures: [{kind, args}]`` and each kind
draws from a run folder alone (predictions of the primary variant, metrics.json, artifacts).

Kinds: ``regression`` (predicted vs true, Bland-Altman, ROC below a threshold, error by range),
``roc`` (a binary target's ROC), ``calibration`` (its reliability diagram), ``forest`` (per-label AUCs with CIs, multilabel tasks),
``segmentation`` (per-sample Dice of each structure, agreement of predicted with true areas),
``area_curves`` (a few per-frame area curves from an artifact, with their beats),
``bland_altman`` (clinical indices from predicted and true volumes), ``robustness_heatmap`` (a column per
artifact x severity), ``mask_overlay`` (true and predicted contours on a slice of three volumes),
``loss_curves`` (per-organ training and validation loss against epoch, from ``history.csv``),
``organ_overlays`` (organ label maps over a few image slices, from an ``.npz`` artifact).
"""
from __future__ import annotations

import zipfile
from typing import Callable

import numpy as np
import pandas as pd

from ..runs import Run
from . import plots

Figure = tuple[str, str]  # (title, svg)
_KINDS: dict[str, Callable[[Run, pd.DataFrame, dict, dict], list[Figure]]] = {}


def figure_kind(name: str) -> Callable:
    def deco(fn):
        _KINDS[name] = fn
        return fn
    return deco


def draw(kind: str, run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """The figures of one kind for one run (an unknown kind draws nothing rather than failing a page)."""
    fn = _KINDS.get(kind)
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


@figure_kind("area_curves")
def area_curves(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """Area against frame for the lowest, median and highest-Dice samples, human and detected beats marked."""
    file = run.path / args.get("artifact", "size.csv")
    structures = args["structures"]
    if not file.is_file():
        return []
    sizes = pd.read_csv(file)
    dice = np.mean([(2 * pred[c["inter"]] / (pred[c["pred"]] + pred[c["truth"]])).to_numpy(float)
                    for c in structures.values()], axis=0)
    order = np.argsort(dice)
    picks = [(order[0], "lowest Dice"), (order[len(order) // 2], "median Dice"), (order[-1], "highest Dice")]
    curves = []
    for i, what in picks:
        g = sizes[sizes.Filename.astype(str) == str(pred.sample_id.iloc[i])].sort_values("Frame")
        if len(g):
            curves.append((f"{pred.sample_id.iloc[i]} ({what} {dice[i]:.3f})", g.Size.to_numpy(float),
                           np.flatnonzero(((g.HumanLarge == 1) | (g.HumanSmall == 1)).to_numpy()),
                           np.flatnonzero((g.ComputerSmall == 1).to_numpy())))
    return [("LV area curves", plots.area_curves(curves))] if curves else []


_INDEX_UNITS = {"lv_edv_ml": "LV EDV (mL)", "lv_esv_ml": "LV ESV (mL)", "lv_ef": "LV EF (%)", "rv_edv_ml": "RV EDV (mL)",
                "rv_esv_ml": "RV ESV (mL)", "rv_ef": "RV EF (%)", "myo_mass_g": "myocardial mass (g)"}


@figure_kind("bland_altman")
def clinical_bland_altman(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """Bland-Altman of clinical indices derived from the predicted and true volumes (one per index)."""
    from ..tasks.acdc_scoring import clinical_indices

    table = clinical_indices(pred)
    figs = []
    for name in args["indices"]:
        g = table[table["index"] == name]
        t, p = g["true"].to_numpy(float), g["pred"].to_numpy(float)
        ok = np.isfinite(t) & np.isfinite(p)
        if ok.sum() >= 3:
            unit = _INDEX_UNITS.get(name, name)
            figs.append((f"{unit.split(' (')[0]}: Bland-Altman", plots.bland_altman_plot(t[ok], p[ok], unit)))
    return figs


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


@figure_kind("mask_overlay")
def mask_overlay(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """A mid-ventricular slice with true and predicted contours for the best, median and worst volume."""
    folder = run.path / args.get("masks", "masks")
    root = (run.manifest().get("data") or {}).get("root")
    if not folder.is_dir() or not root:
        return []
    from ..data import acdc
    from ..errors import DataError
    from ..tasks.acdc_scoring import STRUCTURES

    dice = pred.groupby("sample_id", sort=False)["dice"].mean().sort_values()
    if dice.empty:
        return []
    picks = [(dice.index[-1], "best"), (dice.index[len(dice) // 2], "median"), (dice.index[0], "worst")]
    try:
        samples = acdc.index(root)[0].set_index("sample_id")
        cases = []
        for sid, what in picks:
            s = samples.loc[sid]
            case = acdc.read_case(s.path, s.gt_path)
            mask = acdc.read_mask(folder / f"{sid}.nii.gz", like=case)
            z = case.label.shape[2] // 2
            cases.append((f"{sid} ({what}, Dice {dice[sid]:.3f})", case.image[:, :, z], case.label[:, :, z],
                          mask[:, :, z]))
    except (DataError, KeyError, OSError):
        return []  # the data folder moved or changed: no picture rather than no page
    names = {value: name for name, value in STRUCTURES.items()}
    return [("Predicted vs true contours, mid-ventricular slice", plots.mask_overlays(cases, names))]


@figure_kind("loss_curves")
def loss_curves(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """Loss per organ against epoch from the run's history (``artifact``, default ``history.csv``: one row per
    epoch). Organ columns are those named ``<prefix><organ>`` (``prefix`` default ``train_loss_``); when columns
    ``<val_prefix><organ>`` exist (``val_prefix`` default: ``prefix`` with ``train`` read as ``val``) their
    curves fill a second panel. An empty cell (an epoch the organ added nothing to) is a gap. No file, no
    organ column or no value at all: no figure."""
    file = run.path / args.get("artifact", "history.csv")
    if not file.is_file():
        return []
    try:
        history = pd.read_csv(file)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError):
        return []
    prefix = str(args.get("prefix", "train_loss_"))
    val_prefix = str(args.get("val_prefix", prefix.replace("train", "val", 1)))

    def curves(pre: str) -> dict[str, np.ndarray]:
        out = {c[len(pre):]: pd.to_numeric(history[c], errors="coerce").to_numpy(float)
               for c in history.columns if c.startswith(pre) and len(c) > len(pre)}
        return {k: v for k, v in out.items() if np.isfinite(v).any()}

    train = curves(prefix)
    val = curves(val_prefix) if val_prefix != prefix else {}
    if not train:
        return []
    epoch = (pd.to_numeric(history["epoch"], errors="coerce").to_numpy(float) if "epoch" in history
             else np.arange(1, len(history) + 1, dtype=float))
    return [("Loss per organ", plots.organ_loss_curves(epoch, train, val or None))]


@figure_kind("organ_overlays")
def organ_overlays(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """Organ label maps over a few image slices, one panel each, from an ``.npz`` artifact (``artifact``,
    default ``organ_overlays.npz``) holding ``image`` float [K, H, W] in [0, 1], ``labels`` uint8 [K, H, W]
    (0 background, ``k`` the ``k``-th organ), ``organs`` (the O organ names) and ``titles`` (the K panel
    titles). It is read with ``allow_pickle=False``: write the names as unicode arrays
    (``np.array(names, dtype=str)``), not object arrays. No file, or one not of that form: no figure."""
    file = run.path / args.get("artifact", "organ_overlays.npz")
    if not file.is_file():
        return []
    try:
        with np.load(file, allow_pickle=False) as z:
            image, labels = np.asarray(z["image"], float), np.asarray(z["labels"])
            organs, titles = [str(o) for o in z["organs"]], [str(t) for t in z["titles"]]
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return []
    if image.ndim == 2:
        image, labels = image[None], labels[None]
    if image.ndim != 3 or image.shape != labels.shape or not len(image):
        return []
    titles = (titles + [""] * len(image))[:len(image)]
    return [(args.get("title", "Organ labels"),
             plots.organ_label_overlays(list(zip(titles, image, labels)), organs))]
