"""A task page's downloads: its table as JSON and CSV, safe to open (no HTML a browser could run, no
formula a spreadsheet would)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..io import json_default, write_text
from ..spec import TaskSpec


def table_records(rows: list[dict], spec: TaskSpec, metric_names: list[str]) -> list[dict]:
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
                   published_in_ci=r.get("in_ci"), published_source=pub["source"] if pub else None,
                   published_where=pub["where"] if pub else None,
                   published_not_compared=r.get("published_reason") or None)
        for t in r.get("subgroups") or []:  # flat keys, one per subgroup level: the CSV stays a table
            for lv in t["levels"]:
                key = f"{spec.main_score}[{t['column']}={lv['level']}]"
                rec.update({key: lv.get("value"), f"{key}_low": lv.get("low"), f"{key}_high": lv.get("high"),
                            f"{key}_n": lv.get("n")})
            rec[f"{t['column']}_heterogeneity_p"] = t.get("p")
        out.append(rec)
    return out


def json_text(records: list[dict]) -> str:
    """JSON whose text has no raw ``<``, ``>`` or ``&`` (escaped as \\u003c ...): the same values once
    parsed, and nothing a browser sniffing the file as HTML could run."""
    text = json.dumps(records, indent=2, default=json_default)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


def csv_cell(v):
    """A text cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first)
    gets a leading apostrophe (OWASP's CSV-injection rule); numbers and other text stay as they are."""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(v)
        except ValueError:
            return "'" + v
    return v


def write_downloads(site: Path, task_name: str, records: list[dict]) -> None:
    write_text(site / f"{task_name}.json", json_text(records))
    keys = list(dict.fromkeys(k for rec in records for k in rec))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows({k: csv_cell(v) for k, v in rec.items()} for rec in records)
    write_text(site / f"{task_name}.csv", buf.getvalue())
