"""Static HTML leaderboard rendered with Jinja2 from run folders and the baselines' published numbers.

Per task page: one row per finished run with every metric and its CI, the published value of the
run's baseline beside it (citation linked), the difference and whether the published value lies in
our CI, p-values against the task's reference baseline on the same test samples (Holm-corrected
across rows), the tie group of the best row, provenance, CSV/JSON downloads, and inline SVG plots.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from omegaconf import OmegaConf

from .. import stats, tasks
from ..compare import align, one_mode
from ..config import LEADERBOARDS_DIR, TEMPLATES_DIR, baseline_files, load_baseline, load_task
from ..errors import CardiobenchError
from ..io import write_json, write_text
from ..runs import Run, find_runs

ALPHA = 0.05


def site_dir(out: str | Path | None) -> Path:
    return Path(out) if out else LEADERBOARDS_DIR / "site"


def task_page_path(out: str | Path | None, task: str) -> Path:
    return site_dir(out) / f"{task}.html"


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(str(TEMPLATES_DIR)), autoescape=select_autoescape(["html", "j2"]))


def published_rows(task: str) -> list[dict]:
    rows = []
    for name in baseline_files():
        b = load_baseline(name).baseline
        if b.task != task:
            continue
        for p in b.published:
            rows.append(dict(baseline=name, citation=b.citation.text, doi=b.citation.get("doi"), **p))
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
    """The run's own baseline's published value for ``metric``, same evaluation mode preferred."""
    cands = [p for p in published if p["baseline"] == row["baseline"] and p["metric"] == metric]
    same_mode = [p for p in cands if p.get("mode") == row["mode"]]
    return (same_mode or cands or [None])[0]


def _row(run: Run) -> dict | None:
    m = run.manifest()
    if m.get("status") != "finished":  # an unfinished run is never shown as finished
        return None
    cfg = run.config()
    pred = run.predictions()
    mode = str(pred["mode"].iloc[0]) if "mode" in pred.columns and len(pred) else ""
    modes = list(dict.fromkeys(pred["mode"].astype(str))) if "mode" in pred.columns else []
    return dict(
        run=run, path=str(run.path), baseline=str(cfg.baseline.name), model=str(cfg.model.name),
        profile=str(cfg.profile.name), seed=cfg.get("seed"), commit=str(m.get("git_commit", "unknown"))[:12],
        date=str(m.get("ended", ""))[:10], twin=bool(m.get("data", {}).get("is_twin", True)),
        fingerprint=m.get("data", {}).get("fingerprint"), metrics=run.metrics(), mode=mode, modes=modes,
        external=cfg.get("external") is not None, run_name=run.path.name,
    )


def _comparisons(rows: list[dict], task, module) -> None:
    """p-values vs the reference baseline (Holm across rows) and the tie group of the best row."""
    compared = list(getattr(module, "COMPARED", {}))
    main = task.main_score
    for r in rows:
        r["p"], r["p_note"], r["tied"], r["p_best"] = {}, "", None, None
    refs = [r for r in rows if r["baseline"] == task.reference_baseline]
    cache: dict[tuple[str, str], dict] = {}

    def pairs(a: dict, b: dict) -> dict | None:
        key = (a["path"], b["path"])
        if key not in cache:
            if a["fingerprint"] != b["fingerprint"]:
                cache[key] = None
            else:
                try:
                    pa, pb = align(a["run"], b["run"])
                    cache[key] = {c["metric"]: c for c in module.compare(pa, pb, n_resamples=2000)}
                except CardiobenchError:
                    cache[key] = None
        return cache[key]

    for metric in compared:
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
        if c is not None and main in c:
            idx.append(i)
            ps.append(c[main]["p_value"])
    if best is not None:
        best["tied"] = True
    if ps:
        adjusted, _ = stats.holm(ps)
        for i, p_raw, p_adj in zip(idx, ps, adjusted):
            rows[i]["tied"] = bool(p_adj >= ALPHA)
            rows[i]["p_best"] = dict(raw=p_raw, holm=float(p_adj))


def _figures(row: dict, module, k: int) -> list[dict]:
    from . import plots

    spec = getattr(module, "FIGURES", None)
    if spec and spec.get("kind") == "segmentation":
        return _segmentation_figures(row, k)
    if not spec or spec.get("kind") != "regression":
        return []
    pred = one_mode(row["run"].predictions(), [])  # the primary mode, as in metrics.json
    y, p = pred[spec["target"]].to_numpy(float), pred[spec["prediction"]].to_numpy(float)
    figs = [("Predicted vs true", plots.predicted_vs_true(y, p, spec["unit"])),
            ("Bland-Altman", plots.bland_altman_plot(y, p, spec["unit"]))]
    label = y < spec["positive_below"]
    if 2 <= label.sum() <= len(label) - 2:
        figs.append(("ROC", plots.roc_plot(label, -p, spec["positive_name"])))
    figs.append(("Error by range", plots.per_bin_errors(y, p, spec["bins"], spec["unit"])))
    return [dict(title=t, svg=Markup(plots.uniquify_ids(svg, f"r{k}f{j}"))) for j, (t, svg) in enumerate(figs)]


def _segmentation_figures(row: dict, k: int) -> list[dict]:
    """Per-video Dice, agreement of predicted with traced LV area, and a few area curves with their beats."""
    import pandas as pd

    from . import plots

    pred = row["run"].predictions()
    dice = {ph: (2 * pred[f"inter_{ph}"] / (pred[f"pred_{ph}"] + pred[f"true_{ph}"])).to_numpy(float) for ph in ("ED", "ES")}
    pooled = {ph: float(2 * pred[f"inter_{ph}"].sum() / (pred[f"pred_{ph}"].sum() + pred[f"true_{ph}"].sum()))
              for ph in ("ED", "ES")}
    true = np.concatenate([pred.true_ED, pred.true_ES]).astype(float)
    area = np.concatenate([pred.pred_ED, pred.pred_ES]).astype(float)
    figs = [("Dice per video", plots.dice_by_video(dice["ED"], dice["ES"], pooled["ED"], pooled["ES"])),
            ("LV area: Bland-Altman", plots.bland_altman_plot(true, area, "LV area (px)"))]
    size_file = row["run"].path / "size.csv"
    if size_file.is_file():
        sizes = pd.read_csv(size_file)
        mean = (dice["ED"] + dice["ES"]) / 2
        order = np.argsort(mean)
        picks = [(order[0], "lowest Dice"), (order[len(order) // 2], "median Dice"), (order[-1], "highest Dice")]
        curves = []
        for i, what in picks:
            g = sizes[sizes.Filename.astype(str) == str(pred.sample_id.iloc[i])].sort_values("Frame")
            if len(g):
                curves.append((f"{pred.sample_id.iloc[i]} ({what} {mean[i]:.3f})", g.Size.to_numpy(float),
                               np.flatnonzero(((g.HumanLarge == 1) | (g.HumanSmall == 1)).to_numpy()),
                               np.flatnonzero((g.ComputerSmall == 1).to_numpy())))
        if curves:
            figs.append(("LV area curves", plots.area_curves(curves)))
    return [dict(title=t, svg=Markup(plots.uniquify_ids(svg, f"r{k}f{j}"))) for j, (t, svg) in enumerate(figs)]


def _table_records(rows: list[dict], task, metric_names: list[str]) -> list[dict]:
    out = []
    for r in rows:
        rec = dict(baseline=r["baseline"], model=r["model"], profile=r["profile"], seed=r["seed"],
                   commit=r["commit"], date=r["date"], data="synthetic twin" if r["twin"] else "real",
                   mode=r["mode"], run=r["path"], tied_with_best=r["tied"])
        for m in metric_names:
            v = r["metrics"].get(m) or {}
            rec.update({m: v.get("value"), f"{m}_low": v.get("low"), f"{m}_high": v.get("high")})
            if m in r["p"]:
                rec[f"{m}_p_vs_reference"] = r["p"][m]["raw"]
                rec[f"{m}_p_vs_reference_holm"] = r["p"][m]["holm"]
        if r["p_best"] is not None:
            rec[f"{task.main_score}_p_vs_best"] = r["p_best"]["raw"]
            rec[f"{task.main_score}_p_vs_best_holm"] = r["p_best"]["holm"]
        pub = r.get("published")
        rec.update(published=pub["value"] if pub else None, delta_vs_published=r.get("delta"),
                   published_in_ci=r.get("in_ci"))
        out.append(rec)
    return out


def _write_downloads(site: Path, task_name: str, records: list[dict]) -> None:
    write_json(site / f"{task_name}.json", records)
    keys = list(dict.fromkeys(k for rec in records for k in rec))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(records)
    write_text(site / f"{task_name}.csv", buf.getvalue())


def render_site(paths: list[str | Path], out: str | Path | None, figures: bool = True) -> Path:
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
        module = tasks.get(task_name)
        main = task.main_score
        sign = 1 if task.main_score_direction == "lower" else -1

        def score(r: dict) -> float:
            v = (r["metrics"].get(main) or {}).get("value")
            return sign * v if v is not None else np.inf

        rows.sort(key=score)
        published = published_rows(task_name)
        metric_names = list(dict.fromkeys([*task.metrics, *getattr(module, "COMPARED", {})]))
        for r in rows:
            pub = _published_for(r, main, published)
            v = r["metrics"].get(main) or {}
            r["published"] = pub
            if pub and v.get("value") is not None:
                r["delta"] = v["value"] - pub["value"]
                r["in_ci"] = bool(v["low"] <= pub["value"] <= v["high"])
        _comparisons(rows, task, module)
        for k, r in enumerate(rows):
            r["figures"] = _figures(r, module, k) if figures else []
        records = _table_records(rows, task, metric_names)
        _write_downloads(site, task_name, records)
        ci = (rows[0]["metrics"].get(main) or {}) if rows else {}
        compared = dict(getattr(module, "COMPARED", {}))
        extra = {m: getattr(module, "EXTRA_DEFINITIONS", {}).get(m, "") for m in compared
                 if m not in task.metric_definitions}
        html = env.get_template("task.html.j2").render(task=task, rows=rows, published=published, main=main,
                                                       metric_names=metric_names, ci=ci, alpha=ALPHA,
                                                       compared=compared, extra_definitions=extra)
        write_text(task_page_path(out, task_name), html)
        cards.append(dict(task=task, best=rows[:3], n=len(rows), page=f"{task_name}.html"))
    write_text(site / "index.html", env.get_template("index.html.j2").render(cards=cards))
    return site / "index.html"
