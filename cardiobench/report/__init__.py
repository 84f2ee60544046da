"""Static HTML leaderboard rendered with Jinja2 from run folders and the baselines' published numbers.

Per task page: one row per finished run with every headline metric and its CI, the published value
of the run's baseline beside it (citation linked), the difference and whether the published value
lies in our CI, p-values against the task's reference baseline on the same test samples
(Holm-corrected across rows), the tie group of the best row, provenance, CSV/JSON downloads, and
inline SVG figures chosen by the spec's figure kinds. Everything comes from the task spec: no task
code and no torch. Rendering one task touches only its page, its downloads and the index, under a
lock, so runs that finish at once (a multirun) never lose or half-write a page.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from omegaconf import OmegaConf

from .. import evaluation, seeds, stats
from ..alignment import one_variant
from ..compare import align
from ..config import LEADERBOARDS_DIR, TEMPLATES_DIR, baseline_files, load_baseline, load_task, spec_of, task_files
from ..errors import CardiobenchError
from ..io import file_lock, json_default, sweep_temporaries, write_text
from ..runs import Run, find_runs
from ..seeds import recipe_key
from ..spec import TaskSpec

ALPHA = 0.05
SITE_LOCK = ".render.lock"  # also the site's marker: temporaries are swept only where a render began
log = logging.getLogger("cardiobench")


def site_dir(out: str | Path | None) -> Path:
    """The site folder (``--out``, ``site_dir=``); CardiobenchError when that path is a file."""
    site = Path(out) if out else LEADERBOARDS_DIR / "site"
    if site.exists() and not site.is_dir():
        raise CardiobenchError(f"{site}: the report's output must be a folder (the site: index.html, one page per "
                               f"task and its downloads), but this is a file; give a folder, new or existing")
    return site


def task_page_path(out: str | Path | None, task: str) -> Path:
    return site_dir(out) / f"{task}.html"


def page_script() -> tuple[str, str]:
    """(the pages' one script, its CSP source 'sha256-...'): the policy lets exactly this script run."""
    js = (TEMPLATES_DIR / "sortable.js").read_text(encoding="utf-8")
    return js, "sha256-" + base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES_DIR)), autoescape=select_autoescape(["html", "j2"]))
    js, digest = page_script()
    env.globals.update(script=Markup(js), script_hash=digest)  # Markup: our file, inserted verbatim
    return env


def site_lock(site: Path):
    """One renderer at a time per site folder (runs of a multirun finishing together)."""
    return file_lock(site / SITE_LOCK)


def published_rows(task: str) -> list[dict]:
    rows = []
    for name in baseline_files():
        b = load_baseline(name).baseline
        if b.task != task:
            continue
        for p in b.published:
            rows.append(dict(baseline=name, citation=b.citation.text, doi=b.citation.get("doi"),
                             **OmegaConf.to_container(p)))
    extra = LEADERBOARDS_DIR / "published.yaml"
    if extra.is_file():
        for entry in (OmegaConf.load(extra).get(task) or []):
            for p in entry.published:
                rows.append(dict(baseline=f"{entry.name} (published only)", citation=entry.citation.text,
                                 doi=entry.citation.get("doi"), **OmegaConf.to_container(p)))
    for i, r in enumerate(rows):
        r["ref"] = i + 1
    return rows


def _published_for(row: dict, metric: str, published: list[dict]) -> dict | None:
    """The run's own baseline's published value for ``metric``, same evaluation variant preferred."""
    cands = [p for p in published if p["baseline"] == row["baseline"] and p["metric"] == metric]
    same = [p for p in cands if p.get("mode") == row["variant"]]
    return (same or cands or [None])[0]


def _row(run: Run, spec: TaskSpec) -> dict | None:
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


def _comparisons(rows: list[dict], spec: TaskSpec) -> None:
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
                        cache[key] = {c["metric"]: c for c in evaluation.compare(pa, pb, spec, n_resamples=2000)}
                except CardiobenchError:
                    pass
        return cache[key]

    for metric in spec.compared:
        idx, ps = [], []
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
        if ps:
            adjusted, _ = stats.holm(ps)
            for i, p_raw, p_adj in zip(idx, ps, adjusted):
                rows[i]["p"][metric] = dict(raw=p_raw, holm=float(p_adj))
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
    d = seeds.compare_groups(_by_seed(a, spec), _by_seed(b, spec), spec, name, n_resamples=seeds.PAGE_RESAMPLES)
    return {name: dict(metric=name, diff=d.diff, low=d.low, high=d.high, p_value=d.p_value, per_seed=d.per_seed,
                       test=f"two-level bootstrap, seeds then patients ({d.n_resamples} resamples)")}


def _figures(row: dict, spec: TaskSpec, k: int) -> list[dict]:
    from . import figures, plots

    pred = one_variant(row["run"].predictions(), spec)  # the primary variant, as in metrics.json
    out = []
    for f in spec.figures:
        out += figures.draw(f.kind, row["run"], pred, f.args, row["metrics"])
    return [dict(title=t, svg=Markup(plots.uniquify_ids(svg, f"r{k}f{j}"))) for j, (t, svg) in enumerate(out)]


def _cell_tables(row: dict, spec: TaskSpec, published: list[dict]) -> list[dict]:
    """The run's table metrics (``means_by``: a mean [CI] per cell of ``by``), each cell with the published
    values of the headline metric its first key maps to (``args.published: {LV: dice_lv}``)."""
    out = []
    for name, m in spec.metrics.items():
        entry = row["metrics"].get(name) or {}
        cells = entry.get("cells")
        if m.fn != "means_by" or not cells:
            continue
        columns = list(m.args.get("columns", []))
        links = dict(m.args.get("published") or {})
        body = []
        for cell, values in cells.items():
            pubs = [p for p in published if p["metric"] == links.get(cell.split("/")[0])]
            body.append(dict(name=cell, vals=[values.get(c) or {} for c in columns], published=pubs))
        out.append(dict(name=name, by=" / ".join(entry.get("by", [])), columns=columns, rows=body,
                        level=entry.get("level"), rule=entry.get("rule", ""), definition=m.definition))
    return out


def _table_records(rows: list[dict], spec: TaskSpec, metric_names: list[str]) -> list[dict]:
    out = []
    for r in rows:
        rec = dict(baseline=r["baseline"], model=r["model"], profile=r["profile"],
                   seed=r["seeds_text"] if "members" in r else r["seed"], n_seeds=r.get("n_seeds", 1),
                   commit=r["commit"], date=r["date"], data="synthetic twin" if r["twin"] else "real",
                   mode=r["variant"], run=r["path"], tied_with_best=r["tied"])
        for m in metric_names:
            v = r["metrics"].get(m) or {}
            rec.update({m: v.get("value"), f"{m}_low": v.get("low"), f"{m}_high": v.get("high")})
            if "per_seed" in v:  # a seed group: the SD across seeds and each seed's value
                rec.update({f"{m}_sd_over_seeds": v["sd"], f"{m}_per_seed": v["per_seed"]})
            if m in r["p"]:
                rec[f"{m}_p_vs_reference"] = r["p"][m]["raw"]
                rec[f"{m}_p_vs_reference_holm"] = r["p"][m]["holm"]
        if r["p_best"] is not None:
            rec[f"{spec.main_score}_p_vs_best"] = r["p_best"]["raw"]
            rec[f"{spec.main_score}_p_vs_best_holm"] = r["p_best"]["holm"]
        pub = r.get("published")
        rec.update(published=pub["value"] if pub else None, delta_vs_published=r.get("delta"),
                   published_in_ci=r.get("in_ci"))
        out.append(rec)
    return out


def _json_text(records: list[dict]) -> str:
    """JSON whose text has no raw ``<``, ``>`` or ``&`` (escaped as \\u003c ...): the same values once
    parsed, and nothing a browser sniffing the file as HTML could run."""
    text = json.dumps(records, indent=2, default=json_default)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


def _csv_cell(v):
    """A text cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first)
    gets a leading apostrophe (OWASP's CSV-injection rule); numbers and other text stay as they are."""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(v)
        except ValueError:
            return "'" + v
    return v


def _write_downloads(site: Path, task_name: str, records: list[dict]) -> None:
    write_text(site / f"{task_name}.json", _json_text(records))
    keys = list(dict.fromkeys(k for rec in records for k in rec))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows({k: _csv_cell(v) for k, v in rec.items()} for rec in records)
    write_text(site / f"{task_name}.csv", buf.getvalue())


def render_task(spec: TaskSpec, rows: list[dict], site: Path, figures: bool = True) -> None:
    """One task's page and its CSV/JSON downloads."""
    main = spec.main_score
    sign = 1 if spec.main_score_direction == "lower" else -1

    def score(r: dict) -> float:
        v = (r["metrics"].get(main) or {}).get("value")
        return sign * v if v is not None else np.inf

    rows[:] = group_seeds(rows, spec)
    rows.sort(key=score)
    published = published_rows(spec.name)
    metric_names = list(dict.fromkeys([*spec.headline, *spec.compared]))
    for r in rows:
        pub = _published_for(r, main, published)
        v = r["metrics"].get(main) or {}
        r["published"] = pub
        if pub and v.get("value") is not None:
            r["delta"] = v["value"] - pub["value"]
            r["in_ci"] = bool(v["low"] <= pub["value"] <= v["high"])
    _comparisons(rows, spec)
    for k, r in enumerate(rows):
        r["figures"] = _figures(r, spec, k) if figures else []
        r["tables"] = _cell_tables(r, spec, published)
    _write_downloads(site, spec.name, _table_records(rows, spec, metric_names))
    ci = (rows[0]["metrics"].get(main) or {}) if rows else {}
    compared = {m: s.test for m, s in spec.compared.items()}
    html = _env().get_template("task.html.j2").render(task=spec, rows=rows, published=published, main=main,
                                                      metric_names=metric_names, ci=ci, alpha=ALPHA,
                                                      compared=compared, definitions=spec.definitions,
                                                      n_resamples=seeds.PAGE_RESAMPLES, ci_level=0.95)
    write_text(site / f"{spec.name}.html", html)


def render_index(site: Path) -> Path:
    """index.html: one card per task page in the site folder, from its JSON download."""
    cards = []
    for page in sorted(site.glob("*.html")):
        name = page.stem
        if name == "index" or not (site / f"{name}.json").is_file() or name not in task_files():
            continue
        spec = load_task(name)
        records = json.loads((site / f"{name}.json").read_text())
        cards.append(dict(task=spec, best=records[:3], n=len(records), page=page.name))
    write_text(site / "index.html", _env().get_template("index.html.j2").render(cards=cards))
    return site / "index.html"


def render_site(paths: list[str | Path], out: str | Path | None, figures: bool = True,
                tasks: list[str] | None = None) -> Path:
    """Render the page of every task with finished runs under ``paths`` (or only ``tasks``), then
    the index; returns the index path. The runs are read under the site lock: a renderer that read
    them before another run finished could otherwise overwrite the newer page with its older view."""
    site = site_dir(out)
    with site_lock(site):
        sweep_temporaries(site, marker=SITE_LOCK)  # a renderer killed mid-write left these; none is writing now
        by_task, specs = _rows_by_task(paths, tasks)
        for name, rows in sorted(by_task.items()):
            render_task(specs[name], rows, site, figures)
        return render_index(site)


def _rows_by_task(paths: list[str | Path],
                  tasks: list[str] | None) -> tuple[dict[str, list[dict]], dict[str, TaskSpec]]:
    """The leaderboard row of every finished run under ``paths`` (each folder once), by task."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    specs: dict[str, TaskSpec] = {}
    seen = set()
    for run in find_runs([p for p in paths if Path(p).exists()]):
        key = str(run.path.resolve())
        if key in seen:
            continue
        seen.add(key)
        try:  # one damaged run folder (a truncated manifest.json) costs its own row, not the page
            spec = spec_of(run.config())
            if tasks is not None and spec.name not in tasks:
                continue
            row = _row(run, spec)
        except CardiobenchError as exc:
            log.warning("report: skipped run folder %s: %s", run.path, exc)
            continue
        if row is not None:
            specs.setdefault(spec.name, spec)
            by_task[spec.name].append(row)
    return by_task, specs
