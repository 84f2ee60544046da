"""Paired comparison of two runs on the same test samples (``cardiobench compare``), spec-driven."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import evaluation
from .alignment import align_predictions, one_variant  # noqa: F401  (one_variant: imported from here too)
from .config import spec_of
from .errors import CardiobenchError
from .runs import Run, find_runs
from .seeds import N_RESAMPLES as SEED_RESAMPLES
from .seeds import compare_groups, recipe_key
from .spec import TaskSpec
from .stats import format_p


def align(run_a: Run, run_b: Run) -> tuple[pd.DataFrame, pd.DataFrame, TaskSpec]:
    """Both runs' predictions in the same row order, and their task spec; refuses different tasks or test sets."""
    ta, tb = run_a.config().task.name, run_b.config().task.name
    if ta != tb:
        raise CardiobenchError(f"{run_a.path} is task {ta!r} but {run_b.path} is task {tb!r}")
    spec = spec_of(run_a.config())
    a, b = align_predictions(run_a.predictions(), run_b.predictions(), spec, str(run_a.path), str(run_b.path))
    return a, b, spec


def compare_runs(run_a: Run, run_b: Run, level: float = 0.95,
                 n_resamples: int = evaluation.COMPARE_RESAMPLES) -> list[dict]:
    a, b, spec = align(run_a, run_b)
    return evaluation.compare(a, b, spec, level=level, n_resamples=n_resamples)


def seed_group(path: str | Path) -> list[Run]:
    """The finished runs of one seed group: a run folder (a group of one), or a folder holding runs of one
    recipe on one test set with distinct seeds (``runs/<task>/<baseline>``, a sweep's runs)."""
    p = Path(path)
    if (p / "config.yaml").is_file():
        return [Run.open(p)]
    runs = [r for r in find_runs([p]) if r.finished] if p.is_dir() else []
    if not runs:
        raise CardiobenchError(f"{p}: neither a run folder nor a folder holding finished runs")
    kinds = {(recipe_key(r.config()), (r.manifest().get("data") or {}).get("fingerprint")) for r in runs}
    if len(kinds) > 1:
        raise CardiobenchError(f"{p}: holds runs of {len(kinds)} different recipes or test sets; a seed group is "
                               f"runs that differ only by seed (give a folder of one recipe, or one run)")
    seeds = [r.config().get("seed") for r in runs]
    if len(set(seeds)) < len(seeds):
        raise CardiobenchError(f"{p}: several runs have the same seed ({', '.join(map(str, sorted(seeds)))}); "
                               f"keep one run per seed")
    return sorted(runs, key=lambda r: r.config().get("seed"))


def compare_seed_groups(a: list[Run], b: list[Run], level: float = 0.95,
                        n_resamples: int = SEED_RESAMPLES) -> tuple[list[dict], dict[str, dict]]:
    """Each compared (primary-variant) metric of two seed groups on the same test samples: the difference
    of the means over seeds with its two-level bootstrap interval and p-value (``cardiobench.seeds``),
    and per metric the per-seed differences of the seeds both groups ran."""
    spec = align(a[0], b[0])[2]  # refuses different tasks and test sets up front
    ta = {r.config().get("seed"): r.predictions() for r in a}
    tb = {r.config().get("seed"): r.predictions() for r in b}
    rows, per_seed = [], {}
    for name, m in spec.compared.items():
        if m.variants == "table":
            continue
        d = compare_groups(ta, tb, spec, name, level=level, n_resamples=n_resamples)
        rows.append(dict(metric=name, a=d.mean_a, b=d.mean_b, diff=d.diff, low=d.low, high=d.high,
                         p_value=d.p_value, p_floor=d.p_floor, test=f"two-level bootstrap, seeds then patients ({n_resamples} resamples)"))
        per_seed[name] = d.per_seed
    return rows, per_seed


def format_table(rows: list[dict], name_a: str, name_b: str, level: float = 0.95) -> str:
    """The comparison as a text table; its interval column is headed with ``level`` (the level it was run at)."""
    w = max([9, *(len(r["metric"]) for r in rows)])
    ci_head = f"{level * 100:g}% CI of a - b"
    holm = any("p_holm" in r for r in rows)  # sub-tests of a table metric, Holm-adjusted within their family
    lines = [f"a = {name_a}", f"b = {name_b}",
             f"{'metric':<{w}} {'a':>9} {'b':>9} {'a - b':>9} {ci_head:>22} {'p':>9}"
             + (f" {'p (Holm)':>9}" if holm else "") + "  test"]
    for r in rows:
        ci = f"[{r['low']:.4g}, {r['high']:.4g}]"
        adj = (f" {format_p(r['p_holm']):>9}" if "p_holm" in r else f" {'':>9}") if holm else ""
        lines.append(f"{r['metric']:<{w}} {r['a']:>9.4g} {r['b']:>9.4g} {r['diff']:>9.4g} {ci:>22} "
                     f"{format_p(r['p_value'], r.get('p_floor')):>9}{adj}  {r['test']}"
                     + (f" ({r['note']})" if r.get("note") else ""))
    lines.append(f"Each interval and its p come from one bootstrap distribution (test inversion): the interval "
                 f"excludes 0 exactly when p < {1 - level:.2g}; '< x' is below what the resamples resolve.")
    if holm:
        lines.append("p (Holm): Holm-adjusted across the sub-tests of one family (e.g. every artifact's "
                     "robustness[...], every artifact's robustness[... drop]); a drop row compares the change "
                     "from clean of a with that of b")
    return "\n".join(lines)
