"""Leaderboard figures as inline SVG (matplotlib, Agg): the pictures researchers look at first.

Every figure is drawn from a run's predictions alone; the numbers on it come from
:mod:`cardiobench.stats` so that the page and metrics.json never disagree.
"""
from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .. import stats  # noqa: E402

# parse_math off: sample ids, names and labels are data, and a "$" in one must not become (or break on) mathtext
plt.rcParams.update({"svg.fonttype": "none", "text.parse_math": False, "font.size": 9, "axes.spines.top": False,
                     "axes.spines.right": False})


def to_svg(fig) -> str:
    """The figure as an <svg> element (no XML prolog), ready to inline in HTML."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def predicted_vs_true(y: np.ndarray, p: np.ndarray, unit: str = "") -> str:
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    lo, hi = float(min(y.min(), p.min())) - 2, float(max(y.max(), p.max())) + 2
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=1, ls="--", label="identity")
    ax.scatter(y, p, s=10, alpha=0.7, color="tab:blue", edgecolor="none")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=f"true {unit}", ylabel=f"predicted {unit}",
           title=f"Predicted vs true (r = {stats.pearson_r(y, p):.3f})")
    ax.set_aspect("equal")
    return to_svg(fig)


def bland_altman_plot(y: np.ndarray, p: np.ndarray, unit: str = "") -> str:
    """Difference (predicted - true) against the mean, with bias, limits and their exact 95 % CIs."""
    r = stats.bland_altman(p, y, ci="exact")
    m = (p + y) / 2
    fig, ax = plt.subplots(figsize=(4.4, 3.4))
    ax.scatter(m, p - y, s=10, alpha=0.7, color="tab:blue", edgecolor="none")
    for val, lo, hi, name, color in ((r.bias, r.bias_low, r.bias_high, "bias", "tab:gray"),
                                     (r.upper, r.upper_low, r.upper_high, "+1.96 SD", "tab:red"),
                                     (r.lower, r.lower_low, r.lower_high, "-1.96 SD", "tab:red")):
        ax.axhspan(lo, hi, color=color, alpha=0.15, lw=0)
        ax.axhline(val, color=color, lw=1.2, ls="-" if name == "bias" else "--")
        ax.annotate(f"{name} {val:.2f}", (1.0, val), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                    fontsize=8, color=color)
    if np.isfinite(r.slope):
        xs = np.array([m.min(), m.max()])
        ax.plot(xs, r.intercept + r.slope * xs, color="tab:orange", lw=1,
                label=f"proportional bias slope {r.slope:.3f} (p={r.slope_p:.2g})")
        ax.legend(loc="lower left", fontsize=7, frameon=False)
    ax.set(xlabel=f"mean of predicted and true {unit}", ylabel=f"predicted - true {unit}",
           title="Bland-Altman (bands: exact 95 % CIs)")
    return to_svg(fig)


def roc_plot(label: np.ndarray, score: np.ndarray, what: str, n_resamples: int = 500, seed: int = 0) -> str:
    """ROC curve with a pointwise 95 % band from a class-stratified bootstrap of TPR at fixed FPR."""
    label = np.asarray(label).astype(bool)
    grid = np.linspace(0, 1, 101)

    def tpr_at(lab, sc):
        order = np.argsort(-sc, kind="mergesort")
        lab = lab[order]
        tpr = np.concatenate([[0], np.cumsum(lab) / lab.sum()])
        fpr = np.concatenate([[0], np.cumsum(~lab) / (~lab).sum()])
        return np.interp(grid, fpr, tpr)

    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(label), np.flatnonzero(~label)
    boots = np.empty((n_resamples, len(grid)))
    for b in range(n_resamples):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        boots[b] = tpr_at(label[idx], score[idx])
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    d = stats.delong_auc(label.astype(int), score)
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.fill_between(grid, lo, hi, color="tab:blue", alpha=0.2, lw=0, label="95 % bootstrap band")
    ax.plot(grid, tpr_at(label, score), color="tab:blue", lw=1.5,
            label=f"AUC {d.auc:.3f} [{d.low:.3f}, {d.high:.3f}]")
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"ROC: {what}", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    return to_svg(fig)


def per_bin_errors(y: np.ndarray, p: np.ndarray, edges: list[float], unit: str = "",
                   n_resamples: int = 2000) -> str:
    """MAE per bin of the true value with 95 % percentile-bootstrap CIs and the bin sizes."""
    labels, maes, los, his, ns = [], [], [], [], []
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (y >= a) & (y < b)
        labels.append(f"{a:g}-{b:g}" if b < edges[-1] else f">={a:g}")
        ns.append(int(sel.sum()))
        if sel.sum() >= 2:
            r = stats.bootstrap_ci("mae", y[sel], p[sel], method="percentile", n_resamples=n_resamples)
            maes.append(r.estimate), los.append(r.estimate - r.low), his.append(r.high - r.estimate)
        else:
            maes.append(np.nan), los.append(0), his.append(0)
    fig, ax = plt.subplots(figsize=(4.2, 3.4))
    x = np.arange(len(labels))
    ax.bar(x, np.nan_to_num(maes), yerr=[los, his], color="tab:blue", alpha=0.75, capsize=3)
    for i, n in enumerate(ns):
        ax.annotate(f"n={n}", (x[i], 0), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7,
                    color="white" if n >= 2 else "0.3")
    ax.set_xticks(x, labels)
    ax.set(xlabel=f"true {unit}", ylabel=f"MAE ({unit})", title="Error by range (95 % CIs)")
    return to_svg(fig)


_ID = re.compile(r'id="([^"]+)"')


def uniquify_ids(svg: str, prefix: str) -> str:
    """Prefix the SVG's element ids so several inlined figures do not clash on one page."""
    ids = set(_ID.findall(svg))
    for i in sorted(ids, key=len, reverse=True):
        svg = svg.replace(f'id="{i}"', f'id="{prefix}{i}"').replace(f"#{i})", f"#{prefix}{i})").replace(
            f'"#{i}"', f'"#{prefix}{i}"')
    return svg


def dice_by_sample(dice: dict[str, np.ndarray], pooled: dict[str, float]) -> str:
    """Per-sample Dice of each structure (one dot per sample), the pooled Dice as a bar."""
    fig, ax = plt.subplots(figsize=(max(3.6, 1.2 * len(dice) + 1.2), 3.4))
    jitter = np.random.default_rng(0)
    for k, name in enumerate(dice):
        d = dice[name]
        ax.scatter(k + jitter.uniform(-0.15, 0.15, len(d)), d, s=10, alpha=0.6, color="tab:blue", edgecolor="none")
        ax.hlines(pooled[name], k - 0.3, k + 0.3, color="tab:red", lw=1.5)
        ax.annotate(f"pooled {pooled[name]:.3f}", (k, pooled[name]), xytext=(0, 4), textcoords="offset points",
                    ha="center", fontsize=8, color="tab:red")
    ax.set(xticks=list(range(len(dice))), xticklabels=list(dice), ylabel="Dice", title="Dice per sample",
           xlim=(-0.6, len(dice) - 0.4))
    return to_svg(fig)


def forest_plot(rows: list[tuple[str, dict]], xlabel: str = "AUC", title: str | None = None) -> str:
    """One line per metric entry: its value and CI (e.g. the AUC of each label of a multilabel task)."""
    fig, ax = plt.subplots(figsize=(4.6, 0.28 * len(rows) + 1.0))
    for i, (name, v) in enumerate(rows):
        y = len(rows) - 1 - i
        if v.get("low") is not None:
            ax.hlines(y, v["low"], v["high"], color="tab:blue", lw=1.5)
        ax.plot(v["value"], y, "o", color="tab:blue", ms=4)
    ax.set(yticks=list(range(len(rows))), yticklabels=[n for n, _ in reversed(rows)], xlabel=xlabel,
           title=title or f"{xlabel} per label (95 % CIs)")
    return to_svg(fig)


def heatmap(values: np.ndarray, rows: list[str], cols: list[str], title: str, cbar: str,
            annotations: list[list[str]] | None = None, cmap: str = "RdYlGn") -> str:
    """A rows x columns grid of numbers (e.g. Dice per artifact x severity), each cell annotated."""
    fig, ax = plt.subplots(figsize=(1.0 * len(cols) + 2.2, 0.42 * len(rows) + 1.2))
    im = ax.imshow(values, cmap=cmap, aspect="auto", vmin=np.nanmin(values), vmax=np.nanmax(values))
    for i in range(len(rows)):
        for j in range(len(cols)):
            text = annotations[i][j] if annotations else f"{values[i, j]:.3f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    ax.set(xticks=range(len(cols)), xticklabels=cols, yticks=range(len(rows)), yticklabels=rows, title=title)
    ax.spines[:].set_visible(False)
    fig.colorbar(im, ax=ax, label=cbar, shrink=0.8)
    return to_svg(fig)


def reliability_plot(label: np.ndarray, prob: np.ndarray, what: str, bins: int = 10) -> str:
    """Reliability diagram: observed frequency against mean predicted probability in equal-width bins,
    each with its Wilson 95 % interval and its count; the Brier score in the title."""
    from statsmodels.stats.proportion import proportion_confint

    label, prob = np.asarray(label).astype(int), np.asarray(prob, float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(prob, edges[1:-1]), 0, bins - 1)
    fig, (ax, hx) = plt.subplots(2, 1, figsize=(3.6, 4.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
    xs, ys, lo, hi, ns = [], [], [], [], []
    for b in range(bins):
        m = which == b
        if m.any():
            k, n = int(label[m].sum()), int(m.sum())
            low, high = proportion_confint(k, n, method="wilson")
            xs.append(prob[m].mean()), ys.append(k / n), lo.append(k / n - low), hi.append(high - k / n)
            ns.append(n)
    ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", color="tab:blue", ms=4, lw=1, capsize=2, label="observed (Wilson 95 %)")
    brier = float(np.mean((prob - label) ** 2))
    ax.set(ylabel="observed frequency", title=f"Reliability: {what} (Brier {brier:.3f})", xlim=(0, 1), ylim=(-0.02, 1.02))
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    hx.bar((edges[:-1] + edges[1:]) / 2, np.bincount(which, minlength=bins), width=1 / bins * 0.9, color="0.6")
    hx.set(xlabel="predicted probability", ylabel="volumes")
    return to_svg(fig)
