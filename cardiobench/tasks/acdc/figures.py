"""ACDC's figure kinds: ``bland_altman`` (clinical indices from predicted vs true volumes) and
``mask_overlay`` (true and predicted contours on a mid-ventricular slice of three volumes)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...report.figures import Figure, figure_kind
from ...report.plots import bland_altman_plot, plt, to_svg
from ...runs import Run


def mask_overlays(cases: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], names: dict[int, str]) -> str:
    """One panel per case: an image slice with the true (solid) and predicted (dashed) contour of each label."""
    colors = ["tab:blue", "tab:orange", "tab:red", "tab:green"]
    fig, axes = plt.subplots(1, len(cases), figsize=(2.6 * len(cases), 2.9), squeeze=False)
    for ax, (title, image, truth, pred) in zip(axes[0], cases):
        ax.imshow(image.T, cmap="gray", origin="lower")
        for k, (value, name) in enumerate(names.items()):
            c = colors[k % len(colors)]
            if (truth == value).any():
                ax.contour((truth == value).T.astype(float), levels=[0.5], colors=c, linewidths=1.0, origin="lower")
            if (pred == value).any():
                ax.contour((pred == value).T.astype(float), levels=[0.5], colors=c, linewidths=1.0,
                           linestyles="dashed", origin="lower")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    handles = [plt.Line2D([], [], color=colors[k % len(colors)], label=n) for k, n in enumerate(names.values())]
    handles += [plt.Line2D([], [], color="k", label="truth"), plt.Line2D([], [], color="k", ls="--", label="prediction")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return to_svg(fig)


_INDEX_UNITS = {"lv_edv_ml": "LV EDV (mL)", "lv_esv_ml": "LV ESV (mL)", "lv_ef": "LV EF (%)", "rv_edv_ml": "RV EDV (mL)",
                "rv_esv_ml": "RV ESV (mL)", "rv_ef": "RV EF (%)", "myo_mass_g": "myocardial mass (g)"}


@figure_kind("bland_altman")
def clinical_bland_altman(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """Bland-Altman of clinical indices derived from the predicted and true volumes (one per index)."""
    from .scoring import clinical_indices

    table = clinical_indices(pred)
    figs = []
    for name in args["indices"]:
        g = table[table["index"] == name]
        t, p = g["true"].to_numpy(float), g["pred"].to_numpy(float)
        ok = np.isfinite(t) & np.isfinite(p)
        if ok.sum() >= 3:
            unit = _INDEX_UNITS.get(name, name)
            figs.append((f"{unit.split(' (')[0]}: Bland-Altman", bland_altman_plot(t[ok], p[ok], unit)))
    return figs


@figure_kind("mask_overlay")
def mask_overlay(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """A mid-ventricular slice with true and predicted contours for the best, median and worst volume."""
    folder = run.artifact(args.get("masks", "masks"))
    root = (run.manifest().get("data") or {}).get("root")
    if not folder.is_dir() or not root:
        return []
    from ...errors import DataError
    from . import format as acdc
    from .scoring import STRUCTURES

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
    return [("Predicted vs true contours, mid-ventricular slice", mask_overlays(cases, names))]
