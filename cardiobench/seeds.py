"""Seed groups: runs of one recipe that differ only by seed, and the statistics across them.

A benchmark result is trusted when it holds over seeds, and a leaderboard row per seed hides how far
seeds move the score. Runs are grouped when their resolved configs agree on everything but the seed
and where things ran (``recipe_key``) and they scored the same test data (fingerprint). A group shows
the mean and the sample SD (ddof 1) of each seed's score, and its interval comes from a **two-level
bootstrap**: each replicate resamples the seeds (with replacement, the group's own number), then the
patients of the test set (one draw shared by all seeds, whose predictions are of the same patients), and
recomputes the metric of each drawn seed on the drawn patients; the replicate is the mean over the
drawn seeds. Seed-to-seed and patient-to-patient variation both enter, so the interval is for the
recipe's score on a new seed *and* a new test sample of the same population (Davison & Hinkley 1997,
§3.8, two-stage sampling; percentile interval). Two groups on one test set are compared the same way,
seeds resampled within each group and one patient draw shared by both (paired), the p-value
being twice the smaller tail of the replicate differences around 0.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from . import evaluation, stats
from .alignment import align_predictions
from .errors import CardiobenchError
from .evaluation.metrics import Context, get_metric
from .spec import TaskSpec

# Keys that say where or how fast a run ran, not what it computed: runs differing only in these (and the
# seed) are one recipe. ``data.root``/``cache_dir`` are covered by the data fingerprint.
_NOT_RECIPE = ("seed", "resume", "run_dir", "runs_root", "site_dir", "progress", "report", "data.root",
               "data.cache_dir", "data.workers", "data.decoded_cache", "profile.threads", "train.num_workers",
               "external")
N_RESAMPLES = 2000  # `cardiobench compare` of seed groups
PAGE_RESAMPLES = 1000  # the leaderboard (each replicate recomputes the metric once per drawn seed: ~0.2 ms)


def recipe_key(cfg: DictConfig) -> str:
    """A short hash of the resolved config without the seed and the keys that do not change results."""
    tree = OmegaConf.to_container(cfg, resolve=False)
    for dotted in _NOT_RECIPE:
        *parents, leaf = dotted.split(".")
        node = tree
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()[:12]


def point_value(spec: TaskSpec, metric: str, rows: pd.DataFrame) -> float:
    """The metric's value on ``rows`` (no interval: ``n_resamples=0``); NaN where it is undefined
    (an AUC over a draw with one class)."""
    m = spec.metrics[metric]
    try:
        entry = get_metric(m.fn).compute(rows, m.args, Context(method="percentile", n_resamples=0))
    except ValueError:
        return float("nan")
    return float("nan") if not entry or entry.get("value") is None else float(entry["value"])


@dataclass(frozen=True)
class SeedStats:
    """A group's main score over its seeds."""

    mean: float
    sd: float  # sample SD (ddof 1) across seeds; NaN for one seed
    low: float
    high: float
    n_seeds: int
    level: float
    n_resamples: int


@dataclass(frozen=True)
class GroupDiff:
    """mean-over-seeds(a) - mean-over-seeds(b) on the same patients, two-level bootstrap."""

    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float
    p_value: float
    per_seed: dict  # seed -> a - b, for the seeds both groups ran
    level: float
    n_resamples: int
    p_floor: float = 0.0  # the smallest p the resamples can give


def _patients(rows: pd.DataFrame, spec: TaskSpec) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each patient's row positions, in a fixed order."""
    codes, uniques = pd.factorize(rows[spec.cluster].astype(str), sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    return uniques, [order[bounds[i]:bounds[i + 1]] for i in range(len(uniques))]


def _aligned(tables: Sequence[pd.DataFrame], spec: TaskSpec) -> list[pd.DataFrame]:
    """The primary variant's rows of every table, in the first table's row order (refuses other test sets)."""
    first = evaluation.rows_of(tables[0], spec, (evaluation.variants(tables[0], spec) or [None])[0])
    pairs = [align_predictions(first, t, spec, "seed 1", f"seed {i + 2}") for i, t in enumerate(tables[1:])]
    head = pairs[0][0] if pairs else first.reset_index(drop=True)  # align_predictions sorts by the row key
    return [head] + [b for _, b in pairs]


def _replicates(groups: list[list[pd.DataFrame]], spec: TaskSpec, metric: str, n_resamples: int,
                seed: int) -> np.ndarray:
    """(n_resamples, len(groups)): each group's mean-over-drawn-seeds metric on one shared patient draw."""
    rng = np.random.default_rng(seed)
    _, members = _patients(groups[0][0], spec)
    out = np.full((n_resamples, len(groups)), np.nan)
    for b in range(n_resamples):
        picks = [rng.integers(0, len(g), len(g)) for g in groups]
        rows = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        for j, (g, pick) in enumerate(zip(groups, picks)):
            values = {s: point_value(spec, metric, g[s].iloc[rows]) for s in set(pick.tolist())}
            out[b, j] = np.mean([values[s] for s in pick])
    return out


def _percentile(x: np.ndarray, level: float) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if not len(x):
        return float("nan"), float("nan")
    lo, hi = np.percentile(x, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def seed_stats(tables: Sequence[pd.DataFrame], spec: TaskSpec, metric: str | None = None, level: float = 0.95,
               n_resamples: int = N_RESAMPLES, seed: int = 0) -> SeedStats:
    """Mean, SD and two-level bootstrap interval of ``metric`` (the main score) over one group's seeds."""
    metric = metric or spec.main_score
    tables = _aligned(tables, spec)
    values = np.array([point_value(spec, metric, t) for t in tables])
    rep = _replicates([tables], spec, metric, n_resamples, seed)[:, 0]
    low, high = _percentile(rep, level)
    return SeedStats(float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
                     low, high, len(values), level, n_resamples)


def compare_groups(a: dict[int, pd.DataFrame], b: dict[int, pd.DataFrame], spec: TaskSpec,
                   metric: str | None = None, level: float = 0.95, n_resamples: int = N_RESAMPLES,
                   seed: int = 0) -> GroupDiff:
    """Two seed groups ({seed: predictions}) on the same test patients: the difference of their
    mean-over-seeds ``metric``, its two-level bootstrap interval and p-value, and the per-seed
    differences of the seeds both ran."""
    metric = metric or spec.main_score
    seeds_a, seeds_b = sorted(a), sorted(b)
    tables = _aligned([a[s] for s in seeds_a] + [b[s] for s in seeds_b], spec)
    ta, tb = tables[:len(seeds_a)], tables[len(seeds_a):]
    va = {s: point_value(spec, metric, t) for s, t in zip(seeds_a, ta)}
    vb = {s: point_value(spec, metric, t) for s, t in zip(seeds_b, tb)}
    rep = _replicates([ta, tb], spec, metric, n_resamples, seed)
    mean_a, mean_b = float(np.mean(list(va.values()))), float(np.mean(list(vb.values())))
    # interval and p from the same replicates by test inversion (percentile rule; p never below its floor)
    try:
        inv = stats.invert(mean_a - mean_b, rep[:, 0] - rep[:, 1], "percentile", level)
    except ValueError as exc:  # too few usable replicates, or an undefined mean: one line, never a traceback
        raise CardiobenchError(f"{metric}: no two-level bootstrap comparison ({exc})") from None
    return GroupDiff(mean_a, mean_b, mean_a - mean_b, inv.low, inv.high, inv.p_value,
                     {s: va[s] - vb[s] for s in seeds_a if s in vb}, level, n_resamples, inv.p_floor)
