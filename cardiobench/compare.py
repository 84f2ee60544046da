"""Paired comparison of two runs on the same test samples (``cardiobench compare``), spec-driven."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import evaluation
from .config import spec_of
from .errors import CardiobenchError
from .runs import Run, find_runs
from .spec import TaskSpec


def align(run_a: Run, run_b: Run) -> tuple[pd.DataFrame, pd.DataFrame, TaskSpec]:
    """Both runs' predictions in the same row order, and their task spec; refuses different tasks or test sets."""
    ta, tb = run_a.config().task.name, run_b.config().task.name
    if ta != tb:
        raise CardiobenchError(f"{run_a.path} is task {ta!r} but {run_b.path} is task {tb!r}")
    spec = spec_of(run_a.config())
    a, b = align_predictions(run_a.predictions(), run_b.predictions(), spec, str(run_a.path), str(run_b.path))
    return a, b, spec


def one_variant(df: pd.DataFrame, spec: TaskSpec, prefer: list[str] | None = None) -> pd.DataFrame:
    """The rows of one evaluation variant: the first of ``prefer`` present, else the file's first (primary)."""
    have = evaluation.variants(df, spec)
    if len(have) <= 1:
        return df
    pick = next((v for v in prefer or [] if v in have), have[0])
    return evaluation.rows_of(df, spec, pick)


def align_predictions(a: pd.DataFrame, b: pd.DataFrame, spec: TaskSpec, name_a: str,
                      name_b: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two prediction tables of one task in the same row order; refuses different test sets.

    A table with several variants (echo modes, ACDC artifacts) is compared in one: the variant the
    other table has too, else its primary one; when the spec compares a metric across variants
    (``variants: table``, e.g. robustness), every variant both tables have, primary first.
    """
    va, vb = evaluation.variants(a, spec), evaluation.variants(b, spec)
    common = [v for v in va if v in vb]
    across = len(common) > 1 and any(m.variants == "table" for m in spec.compared.values())
    if across:
        a = a[a[spec.variant].astype(str).isin(common)]
        b = b[b[spec.variant].astype(str).isin(common)]
    else:
        a = one_variant(a, spec, vb)
        b = one_variant(b, spec, evaluation.variants(a, spec))
    key = [*spec.row_keys, *([spec.variant] if across else [])]
    for name, df in ((name_a, a), (name_b, b)):
        missing = [k for k in key if k not in df.columns]
        if missing:
            raise CardiobenchError(f"{name}: predictions lack the row key column(s) {', '.join(missing)}")
    ka, kb = set(map(tuple, a[key].astype(str).to_numpy())), set(map(tuple, b[key].astype(str).to_numpy()))
    if ka != kb:
        only_a, only_b = sorted(ka - kb), sorted(kb - ka)

        def show(s):
            return ", ".join("/".join(x) for x in s[:5]) + (" ..." if len(s) > 5 else "")

        raise CardiobenchError(
            f"the runs were scored on different test sets: {len(only_a)} sample(s) only in {name_a}"
            f"{' (' + show(only_a) + ')' if only_a else ''}, {len(only_b)} only in {name_b}"
            f"{' (' + show(only_b) + ')' if only_b else ''}; compare needs the same samples")
    order = {v: i for i, v in enumerate(common)}  # the primary variant's rows stay first

    def sort(df: pd.DataFrame) -> pd.DataFrame:
        rank = df[spec.variant].astype(str).map(order) if across else 0
        return df.assign(_rank=rank).sort_values(["_rank", *key]).drop(columns="_rank").reset_index(drop=True)

    a, b = sort(a), sort(b)
    for col in spec.targets:
        if col in a.columns and col in b.columns and not (a[col].round(4) == b[col].round(4)).all():
            raise CardiobenchError(f"the runs disagree on the ground truth column {col!r} for the same samples "
                                   f"(different data versions?): {name_a} vs {name_b}")
    return a, b


def compare_runs(run_a: Run, run_b: Run, level: float = 0.95, n_resamples: int = 9999) -> list[dict]:
    a, b, spec = align(run_a, run_b)
    return evaluation.compare(a, b, spec, level=level, n_resamples=n_resamples)


def seed_group(path: str | Path) -> list[Run]:
    """The finished runs of one seed group: a run folder (a group of one), or a folder holding runs of one
    recipe on one test set with distinct seeds (``runs/<task>/<baseline>``, a sweep's runs)."""
    from .seeds import recipe_key

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
                        n_resamples: int = 2000) -> tuple[list[dict], dict[str, dict]]:
    """Each compared (primary-variant) metric of two seed groups on the same test samples: the difference
    of the means over seeds with its two-level bootstrap interval and p-value (``cardiobench.seeds``),
    and per metric the per-seed differences of the seeds both groups ran."""
    from .seeds import compare_groups

    spec = align(a[0], b[0])[2]  # refuses different tasks and test sets up front
    ta = {r.config().get("seed"): r.predictions() for r in a}
    tb = {r.config().get("seed"): r.predictions() for r in b}
    rows, per_seed = [], {}
    for name, m in spec.compared.items():
        if m.variants == "table":
            continue
        d = compare_groups(ta, tb, spec, name, level=level, n_resamples=n_resamples)
        rows.append(dict(metric=name, a=d.mean_a, b=d.mean_b, diff=d.diff, low=d.low, high=d.high,
                         p_value=d.p_value, test=f"two-level bootstrap, seeds then patients ({n_resamples} resamples)"))
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
        adj = (f" {r['p_holm']:>9.3g}" if "p_holm" in r else f" {'':>9}") if holm else ""
        lines.append(f"{r['metric']:<{w}} {r['a']:>9.4g} {r['b']:>9.4g} {r['diff']:>9.4g} {ci:>22} "
                     f"{r['p_value']:>9.3g}{adj}  {r['test']}")
    if holm:
        lines.append("p (Holm): Holm-adjusted across the sub-tests of one family (e.g. every artifact's "
                     "robustness[...], every artifact's robustness[... drop]); a drop row compares the change "
                     "from clean of a with that of b")
    return "\n".join(lines)
