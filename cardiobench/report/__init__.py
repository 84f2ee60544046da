"""Static HTML leaderboard rendered with Jinja2 from run folders and the baselines' published numbers."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..config import LEADERBOARDS_DIR, TEMPLATES_DIR, baseline_files, load_baseline, load_task
from ..io import write_text
from ..runs import Run, find_runs


def site_dir(out: str | Path | None) -> Path:
    return Path(out) if out else LEADERBOARDS_DIR / "site"


def task_page_path(out: str | Path | None, task: str) -> Path:
    return site_dir(out) / f"{task}.html"


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(str(TEMPLATES_DIR)), autoescape=select_autoescape(["html", "j2"]))


def _row(run: Run) -> dict | None:
    m = run.manifest()
    if m.get("status") != "finished":  # an unfinished run is never shown as finished
        return None
    cfg = run.config()
    return dict(
        run=str(run.path), baseline=cfg.baseline.name, model=cfg.model.name, profile=cfg.profile.name,
        seed=cfg.seed, commit=str(m.get("git_commit", "unknown"))[:12], date=m.get("ended", "")[:10],
        twin=bool(m.get("data", {}).get("is_twin", True)), metrics=run.metrics(),
    )


def published_rows(task: str) -> list[dict]:
    rows = []
    for name in baseline_files():
        b = load_baseline(name).baseline
        if b.task != task:
            continue
        for p in b.published:
            rows.append(dict(baseline=name, citation=b.citation.text, doi=b.citation.get("doi"), **p))
    return rows


def render_site(paths: list[str | Path], out: str | Path | None) -> Path:
    """Render index.html and one page per task with finished runs; returns the index path."""
    site = site_dir(out)
    runs = find_runs([p for p in paths if Path(p).exists()])
    by_task: dict[str, list[dict]] = defaultdict(list)
    seen = set()
    for run in runs:
        key = str(run.path.resolve())
        if key in seen:
            continue
        seen.add(key)
        row = _row(run)
        if row is not None:
            by_task[run.config().task.name].append(row)
    env = _env()
    cards = []
    for task_name, rows in sorted(by_task.items()):
        task = load_task(task_name)
        sign = 1 if task.main_score_direction == "lower" else -1
        rows.sort(key=lambda r: sign * r["metrics"].get(task.main_score, {}).get("value", float("inf")))
        html = env.get_template("task.html.j2").render(task=task, rows=rows, published=published_rows(task_name))
        write_text(task_page_path(out, task_name), html)
        cards.append(dict(task=task, best=rows[0] if rows else None, n=len(rows)))
    write_text(site / "index.html", env.get_template("index.html.j2").render(cards=cards))
    return site / "index.html"
