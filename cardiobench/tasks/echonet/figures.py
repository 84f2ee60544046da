"""EchoNet's figure kind: ``area_curves`` (LV area against frame for the lowest-, median- and highest-Dice
videos, human-traced and detected beats marked, from the ``size.csv`` artifact)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...report.figures import Figure, figure_kind
from ...report.plots import plt, to_svg
from ...runs import Run


def area_curve_plot(curves: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> str:
    """LV area against frame for a few videos: (label, area, human ED/ES frames, detected end-systoles)."""
    fig, axes = plt.subplots(len(curves), 1, figsize=(4.8, 1.3 * len(curves) + 0.4), sharex=False, squeeze=False)
    for ax, (label, area, human, found) in zip(axes[:, 0], curves):
        ax.plot(np.arange(len(area)), area, color="tab:blue", lw=1)
        ax.scatter(found, area[found], marker="v", color="tab:red", s=18, zorder=3, label="end-systole found")
        ax.scatter(human, area[human], marker="o", facecolor="none", edgecolor="k", s=30, zorder=3, label="traced ED/ES")
        ax.set_ylabel("area (px)")
        ax.set_title(label, fontsize=8, loc="left")
    axes[0, 0].legend(fontsize=7, frameon=False, loc="upper right")
    axes[-1, 0].set_xlabel("frame")
    fig.tight_layout()
    return to_svg(fig)


@figure_kind("area_curves")
def area_curves(run: Run, pred: pd.DataFrame, args: dict, metrics: dict) -> list[Figure]:
    """Area against frame for the lowest, median and highest-Dice samples, human and detected beats marked."""
    file = run.artifact(args.get("artifact", "size.csv"))
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
    return [("LV area curves", area_curve_plot(curves))] if curves else []
