"""The leaderboard's rows and their statistics, before any HTML: one row per finished run, runs that
differ only by seed grouped (the seed spread in the interval), the published value of the run's own
baseline beside it when comparable (cardiobench.published), and the paired comparisons against the reference baseline (Holm-corrected across
rows) with the tie group of the best row."""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from .. import evaluation, published, seeds, stats
from ..alignment import one_variant
from ..compare import align
from ..errors import CardiobenchError
from ..runs import Run
from ..seeds import recipe_key
from ..spec import TaskSpec

ALPHA = 0.05


def published_rows(task: str) -> tuple[list[dict], list[dict]]:
    """(the task's published numbers as page rows, the references they cite): references numbered once
    per page in order of first use; each row carries its own source's number and where in it."""
    numbers = published.load(task)
    refs: dict[str, dict] = {}
    rows = []
    for p in numbers:
        if p.source.key not in refs:
            refs[p.source.key] = dict(ref=len(refs) + 1, key=p.source.key, citation=p.source.citation,
                                      doi=p.source.doi, arxiv=p.source.arxiv, url=p.source.url)
        rows.append(dict(number=p, method=p.method, baseline=p.baseline, metric=p.metric, value=p.value,
                         mode=p.mode, split=p.split, n=p.n, unit=p.unit, size=p.size, same_data=p.same_data,
                         kind=p.kind, definition=p.definition, ours=p.ours, where=p.where, note=p.note,
                         ref=refs[p.source.key]["ref"], source=p.source.citation,
                         reason=published.context_reason(p)))
    return rows, list(refs.values())


def published_for(row: dict, metric: str, numbers: list[dict]) -> tuple[dict | None, str]:
    """(the published ``metric`` of the run's own method it may be compared with, or None; and when None,
    why not): same definition, same protocol, same data, measured, and the run on real data."""
    cands = [p for p in numbers if p["baseline"] == row["baseline"] and p["metric"] == metric]
    if not cands:
        return None, "no published number of this method"
    reasons = [published.why_not_comparable(p["number"], row["variant"], row["twin"]) for p in cands]
    for p, why in zip(cands, reasons):
        if not why:
            return p, ""
    same_mode = [w for p, w in zip(cands, reasons) if p["mode"] == (row["variant"] or "standard")]
    return None, (same_mode or reasons)[0]


def run_row(run: Run, spec: TaskSpec) -> dict | None:
    m = run.manifest()
    if m.get("status") != "finished":  # an unfinished run is never shown as finished
        return None
    cfg = run.config()
    vs = evaluation.variants(run.predictions(), spec)
    return dict(
        run=run, path=str(run.path), baseline=str(cfg.baseline.name), model=str(cfg.model.name),
        profile=str(cfg.profile.name), seed=cfg.get("seed"), commit=str(m.get("git_commit", "unknown"))[:12],
        date=str(m.get("ended", ""))[:10], twin=bool(m.get("data", {}).get("is_twin", True)),
        fingerprint=m.get("data", {}).get("fingerprint"), metrics=run.metrics(), variant=vs[0] if vs else "",
        variants=vs, external=cfg.get("external") is not None, run_name=run.path.name, recipe=recipe_key(cfg),
    )


def _group_key(row: dict) -> tuple:
    return (row["baseline"], row["recipe"], row["fingerprint"], row["variant"], row["external"])


def group_seeds(rows: list[dict], spec: TaskSpec, n_resamples: int = seeds.PAGE_RESAMPLES) -> list[dict]:
    """One row per seed group (runs of one recipe on one test set that differ only by seed; see
    ``cardiobench.seeds``): the lowest seed's row carries the group, its main score the mean over the
    seeds with the SD and the two-level bootstrap interval, every other headline metric the mean and SD.
    A run alone (or runs with the same seed) keeps its own row."""
    by: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        by[_group_key(r)].append(r)
    out = []
    for members in by.values():
        members.sort(key=lambda r: (r["seed"] is None, r["seed"] if r["seed"] is not None else 0, r["date"]))
        distinct = {r["seed"] for r in members}
        if len(members) < 2 or len(distinct) < len(members) or None in distinct:
            out += members
            continue
        out.append(_group_row(members, spec, n_resamples))
    return out


def _group_row(members: list[dict], spec: TaskSpec, n_resamples: int) -> dict:
    main = spec.main_score
    head = dict(members[0])
    tables = [one_variant(m["run"].predictions(), spec) for m in members]
    st = seeds.seed_stats(tables, spec, main, n_resamples=n_resamples)
    metrics = dict(head["metrics"])
    for name in dict.fromkeys([*spec.headline, *spec.compared]):
        values = [(m["metrics"].get(name) or {}).get("value") for m in members]
        if any(v is None for v in values):  # not every seed has it: no group value, not seed 0's either
            metrics.pop(name, None)
            continue
        entry = dict(value=float(np.mean(values)), sd=float(np.std(values, ddof=1)), low=None, high=None,
                     per_seed=dict(zip([m["seed"] for m in members], values)))
        if name == main:
            entry.update(low=st.low, high=st.high, level=st.level, method="two-level bootstrap (seeds, then patients)")
        metrics[name] = entry
    head.update(metrics=metrics, members=members, n_seeds=len(members), tables_by_seed=tables,
                seeds_text=", ".join(str(m["seed"]) for m in members))
    return head


def compare_rows(rows: list[dict], spec: TaskSpec) -> None:
    """p-values vs the reference baseline (Holm across rows) and the tie group of the best row."""
    for r in rows:
        r["p"], r["p_note"], r["tied"], r["p_best"] = {}, "", None, None
    refs = [r for r in rows if r["baseline"] == spec.reference_baseline]
    cache: dict[tuple[str, str], dict | None] = {}

    def pairs(a: dict, b: dict) -> dict | None:
        key = (a["path"], b["path"])
        if key not in cache:
            cache[key] = None
            if a["fingerprint"] == b["fingerprint"]:
                try:
                    if "members" in a or "members" in b:
                        cache[key] = _group_comparison(a, b, spec)
                    else:
                        pa, pb, _ = align(a["run"], b["run"])
                        cache[key] = {c["metric"]: c for c in evaluation.compare(pa, pb, spec, n_resamples=evaluation.COMPARE_RESAMPLES)}
                except CardiobenchError:
                    pass
        return cache[key]

    for metric in spec.compared:
        idx, ps, floors = [], [], []
        for i, r in enumerate(rows):
            ref = next((x for x in refs if x["fingerprint"] == r["fingerprint"] and x is not r), None)
            if r in refs and ref is None:
                r["p_note"] = "reference"
                continue
            if ref is None:
                r["p_note"] = "no reference run on this test set"
                continue
            c = pairs(r, ref)
            if c is not None and metric not in c and ("members" in r or "members" in ref):
                r["p_note"] = f"seed group: {spec.main_score} only here; cardiobench compare tests the rest"
                continue
            if c is None or metric not in c:
                r["p_note"] = "different test samples"
                continue
            idx.append(i)
            ps.append(c[metric]["p_value"])
            floors.append(c[metric].get("p_floor"))
        if ps:
            adjusted, _ = stats.holm(ps)
            for i, p_raw, p_adj, floor in zip(idx, ps, adjusted, floors):
                # a raw p at its floor is an upper bound; so is its Holm adjustment ("< x" on the page)
                at_floor = floor is not None and p_raw <= floor * (1 + 1e-9)
                rows[i]["p"][metric] = dict(raw=p_raw, holm=float(p_adj), floor=floor,
                                            holm_floor=float(p_adj) if at_floor else None)
    # Tie group: rows whose main score does not differ significantly from the best row's (Holm).
    best = rows[0] if rows else None
    idx, ps = [], []
    for i, r in enumerate(rows[1:], start=1):
        c = pairs(r, best)
        if c is not None and spec.main_score in c:
            idx.append(i)
            ps.append(c[spec.main_score]["p_value"])
    if best is not None:
        best["tied"] = True
    if ps:
        adjusted, _ = stats.holm(ps)
        for i, p_raw, p_adj in zip(idx, ps, adjusted):
            rows[i]["tied"] = bool(p_adj >= ALPHA)
            rows[i]["p_best"] = dict(raw=p_raw, holm=float(p_adj))


def _by_seed(row: dict, spec: TaskSpec) -> dict:
    """{seed: primary-variant predictions} of a row: its group's seeds, or its own run."""
    if "members" in row:
        return {m["seed"]: t for m, t in zip(row["members"], row["tables_by_seed"])}
    return {row["seed"]: one_variant(row["run"].predictions(), spec)}


def _group_comparison(a: dict, b: dict, spec: TaskSpec) -> dict:
    """The main score of two rows, one a seed group, by the two-level bootstrap (the other compared
    metrics of a seed group are left to ``cardiobench compare``: each costs a bootstrap of its own)."""
    name = spec.main_score
    d = seeds.compare_groups(_by_seed(a, spec), _by_seed(b, spec), spec, name, n_resamples=seeds.N_RESAMPLES)
    return {name: dict(metric=name, diff=d.diff, low=d.low, high=d.high, p_value=d.p_value, p_floor=d.p_floor,
                       per_seed=d.per_seed,
                       test=f"two-level bootstrap, seeds then patients ({d.n_resamples} resamples)")}
