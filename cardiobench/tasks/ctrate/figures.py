"""CT-RATE's figure kinds: ``loss_curves`` (per-organ training and validation loss against epoch, from
``history.csv``) and ``organ_overlays`` (organ label maps over image slices, from an ``.npz`` artifact)."""
from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.patches import Patch

from ...report.figures import Figure, figure_kind
from ...report.plots import plt, to_svg
from ...runs import Run


def _organ_palette(n: int) -> list:
    """``n`` qualitative colours, the most distinct first: tab10's, then their light tab20 partners, then
    tab20b's darks and mids (30 before they repeat). Colour ``k - 1`` is organ ``k``'s in every figure."""
    t20, t20b = plt.get_cmap("tab20").colors, plt.get_cmap("tab20b").colors
    base = list(t20[0::2]) + list(t20[1::2]) + list(t20b[0::4]) + list(t20b[2::4])
    return [base[i % len(base)] for i in range(n)]


def organ_loss_curves(epoch: np.ndarray, train: dict[str, np.ndarray],
                      val: dict[str, np.ndarray] | None = None) -> str:
    """Loss against epoch, one line per organ (NaN epochs left as gaps, each value a dot so a lone epoch
    shows), training in one panel and, when given, validation in a second; one legend to the right."""
    names = list(dict.fromkeys([*train, *(val or {})]))
    colors = _organ_palette(len(names))
    styles = ["-", "--", ":"]
    panels = [("train", train)] + ([("validation", val)] if val else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.2), squeeze=False, sharey=True)
    for ax, (what, curves) in zip(axes[0], panels):
        for i, name in enumerate(names):
            if name in curves:
                ax.plot(epoch, curves[name], color=colors[i], ls=styles[(i // 10) % len(styles)], lw=1,
                        marker="o", ms=2, label=name)
        ax.set(xlabel="epoch", title=f"{what} loss per organ")
    axes[0, 0].set_ylabel("loss")
    handles = [plt.Line2D([], [], color=colors[i], ls=styles[(i // 10) % len(styles)], lw=1, marker="o", ms=2,
                          label=n) for i, n in enumerate(names)]
    fig.tight_layout()
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=6, frameon=False,
               ncol=1 if len(names) <= 15 else 2)
    return to_svg(fig)


def organ_label_overlays(panels: list[tuple[str, np.ndarray, np.ndarray]], organs: list[str],
                         alpha: float = 0.45) -> str:
    """One panel per slice: the image in grey (values in [0, 1]) under its organ label map (0 background,
    left clear; ``k`` the colour of ``organs[k - 1]``), and one legend of the organs seen in any panel."""
    colors = np.array([to_rgb(c) for c in _organ_palette(max(len(organs), 1))])
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9), squeeze=False)
    seen: set[int] = set()
    for ax, (title, image, labels) in zip(axes[0], panels):
        labels = np.asarray(labels).astype(int)
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        inside = (labels > 0) & (labels <= len(organs))
        rgba = np.zeros((*labels.shape, 4))
        rgba[inside, :3] = colors[labels[inside] - 1]
        rgba[inside, 3] = alpha
        ax.imshow(rgba, interpolation="nearest")
        seen.update(np.unique(labels[inside]).tolist())
        ax.set_title(title, fontsize=7)
        ax.set_axis_off()
    handles = [Patch(color=colors[k - 1], alpha=alpha, label=organs[k - 1]) for k in sorted(seen)]
    fig.tight_layout()
    if handles:
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=6, frameon=False,
                   ncol=1 if len(handles) <= 15 else 2)
    return to_svg(fig)


@figure_kind("loss_curves")
def loss_curves(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """Loss per organ against epoch from the run's history (``artifact``, default ``history.csv``: one row per
    epoch). Organ columns are those named ``<prefix><organ>`` (``prefix`` default ``train_loss_``); when columns
    ``<val_prefix><organ>`` exist (``val_prefix`` default: ``prefix`` with ``train`` read as ``val``) their
    curves fill a second panel. An empty cell (an epoch the organ added nothing to) is a gap. No file, no
    organ column or no value at all: no figure."""
    file = run.artifact(args.get("artifact", "history.csv"))
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
    return [("Loss per organ", organ_loss_curves(epoch, train, val or None))]


@figure_kind("organ_overlays")
def organ_overlays(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """Organ label maps over a few image slices, one panel each, from an ``.npz`` artifact (``artifact``,
    default ``organ_overlays.npz``) holding ``image`` float [K, H, W] in [0, 1], ``labels`` uint8 [K, H, W]
    (0 background, ``k`` the ``k``-th organ), ``organs`` (the O organ names) and ``titles`` (the K panel
    titles). It is read with ``allow_pickle=False``: write the names as unicode arrays
    (``np.array(names, dtype=str)``), not object arrays. No file, or one not of that form: no figure."""
    file = run.artifact(args.get("artifact", "organ_overlays.npz"))
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
             organ_label_overlays(list(zip(titles, image, labels)), organs))]
