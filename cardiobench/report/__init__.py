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
import hashlib
import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from .. import seeds
from ..alignment import one_variant
from ..config import TEMPLATES_DIR, load_task, spec_of, task_files
from ..errors import CardiobenchError
from ..io import file_lock, sweep_temporaries, write_text
from ..runs import find_runs
from ..spec import TaskSpec
from ..stats import format_p
from .downloads import csv_cell, json_text, table_records, write_downloads  # noqa: F401  (re-exported)
from .rows import ALPHA, compare_rows, group_seeds, published_for, published_rows, run_row  # noqa: F401

SITE_LOCK = ".render.lock"  # also the site's marker: temporaries are swept only where a render began
log = logging.getLogger("cardiobench")


# Beside the runs, in the working folder (as runs/ is): never inside the installed package.
DEFAULT_SITE = Path("leaderboards") / "site"


def site_dir(out: str | Path | None) -> Path:
    """The site folder (``--out``, ``site_dir=``); CardiobenchError when that path is a file."""
    site = Path(out) if out else DEFAULT_SITE
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
    env.filters["p"] = lambda p: format_p(p.get("raw"), p.get("floor")) if isinstance(p, dict) else format_p(p)
    env.filters["p_holm"] = lambda p: format_p(p["holm"], p.get("holm_floor"))
    return env


def site_lock(site: Path):
    """One renderer at a time per site folder (runs of a multirun finishing together)."""
    return file_lock(site / SITE_LOCK)


def _figures(row: dict, spec: TaskSpec, k: int) -> list[dict]:
    from . import figures, plots

    pred = one_variant(row["run"].predictions(), spec)  # the primary variant, as in metrics.json
    out = []
    for f in spec.figures:
        out += figures.draw(f.kind, row["run"], pred, f.args, row["metrics"])
    return [dict(title=t, svg=Markup(plots.uniquify_ids(svg, f"r{k}f{j}"))) for j, (t, svg) in enumerate(out)]


def _subgroups(row: dict, spec: TaskSpec, k: int, figures: bool) -> list[dict]:
    """The main score per declared subgroup of the row's (first seed's) primary predictions, with a
    forest plot of the levels."""
    from ..evaluation.subgroups import subgroup_tables
    from . import plots

    out = []
    for j, t in enumerate(subgroup_tables(row["run"].predictions(), spec)):
        shown = [(f"{r['level']} (n = {r['n']})", r) for r in t["levels"] if r.get("value") is not None]
        if figures and shown:
            svg = plots.forest_plot(shown, xlabel=spec.main_score, title=f"{spec.main_score} by {t['name']} (95 % CIs)")
            t["svg"] = Markup(plots.uniquify_ids(svg, f"r{k}s{j}"))
        out.append(t)
    return out


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


def render_task(spec: TaskSpec, rows: list[dict], site: Path, figures: bool = True) -> None:
    """One task's page and its CSV/JSON downloads."""
    main = spec.main_score
    sign = 1 if spec.main_score_direction == "lower" else -1

    def score(r: dict) -> float:
        v = (r["metrics"].get(main) or {}).get("value")
        return sign * v if v is not None else np.inf

    rows[:] = group_seeds(rows, spec)
    rows.sort(key=score)
    published, references = published_rows(spec.name)
    metric_names = list(dict.fromkeys([*spec.headline, *spec.compared]))
    for r in rows:
        pub, why = published_for(r, main, published)
        v = r["metrics"].get(main) or {}
        r["published"], r["published_reason"] = pub, why
        if pub and v.get("value") is not None and v.get("low") is not None:
            r["delta"] = v["value"] - pub["value"]
            r["in_ci"] = bool(v["low"] <= pub["value"] <= v["high"])
    compare_rows(rows, spec)
    for k, r in enumerate(rows):
        r["figures"] = _figures(r, spec, k) if figures else []
        r["tables"] = _cell_tables(r, spec, published)
        r["subgroups"] = _subgroups(r, spec, k, figures) if spec.subgroups else []
    write_downloads(site, spec.name, table_records(rows, spec, metric_names))
    ci = (rows[0]["metrics"].get(main) or {}) if rows else {}
    compared = {m: s.test for m, s in spec.compared.items()}
    secondary = [m for m in metric_names if m not in spec.headline]  # e.g. 18 per-label AUCs: a table of their own
    html = _env().get_template("task.html.j2").render(task=spec, rows=rows, published=published, main=main,
                                                      references=references, metric_names=spec.headline,
                                                      secondary=secondary, ci=ci, alpha=ALPHA,
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
            row = run_row(run, spec)
        except CardiobenchError as exc:
            log.warning("report: skipped run folder %s: %s", run.path, exc)
            continue
        if row is not None:
            specs.setdefault(spec.name, spec)
            by_task[spec.name].append(row)
    return by_task, specs
