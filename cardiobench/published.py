"""Published numbers: loaded from ``leaderboards/published.yaml`` (and an include folder's
``published.yaml``), validated against one schema, and matched like with like to a run.

The schema and the reasons for one file are in docs/published-numbers.md. A number is *comparable*
with a run only when it is a measured value of one of the task's own metrics (the same definition),
of the run's evaluation variant (the same protocol), on the same data and split, and the run ran on
real data; every other number is context, and :func:`why_not_comparable` says why in words.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from . import plugins
from .config import LEADERBOARDS_DIR, load_task, task_files
from .errors import CardiobenchError

PUBLISHED_FILE = LEADERBOARDS_DIR / "published.yaml"
REQUIRED = ("method", "source", "where", "split", "n", "unit", "same_data", "kind", "metric", "value", "mode")
OPTIONAL = ("baseline", "note")
METHOD_ONLY = ("numbers",)
KINDS = ("measured", "projection")
REFERENCE_KEYS = ("citation", "doi", "arxiv", "url", "bibtex")


@dataclass(frozen=True)
class Reference:
    key: str
    citation: str
    doi: str | None = None
    arxiv: str | None = None
    url: str | None = None

    @property
    def link(self) -> str:
        if self.doi:
            return f"https://doi.org/{self.doi}"
        if self.arxiv:
            return f"https://arxiv.org/abs/{self.arxiv}"
        return self.url or ""


@dataclass(frozen=True)
class PublishedNumber:
    task: str
    method: str
    metric: str
    value: float
    mode: str
    split: str
    n: int | None
    unit: str
    same_data: bool
    kind: str
    source: Reference
    where: str
    definition: str          # our metric's definition, or the declared published-only one
    ours: bool               # the metric is one of the task's own (same definition as ours)
    baseline: str | None = None
    note: str = ""

    @property
    def size(self) -> str:
        return f"n = {self.n} {self.unit}" if self.n is not None else f"n not reported ({self.unit})"


def _files() -> list[Path]:
    return [PUBLISHED_FILE, *(d / "published.yaml" for d in plugins.include_dirs() if (d / "published.yaml").is_file())]


def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise CardiobenchError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise CardiobenchError(f"{path}: expected a mapping with 'references', 'definitions' and 'tasks'")
    unknown = set(data) - {"references", "definitions", "tasks"}
    if unknown:
        raise CardiobenchError(f"{path}: unknown top-level key {sorted(unknown)[0]!r} (references, definitions, tasks)")
    return data


def _references(path: Path, data: dict) -> dict[str, Reference]:
    out = {}
    for key, r in (data.get("references") or {}).items():
        where = f"{path}: references.{key}"
        if not isinstance(r, dict) or not r.get("citation"):
            raise CardiobenchError(f"{where}: needs a 'citation'")
        unknown = set(r) - set(REFERENCE_KEYS)
        if unknown:
            raise CardiobenchError(f"{where}: unknown field {sorted(unknown)[0]!r} (known: {', '.join(REFERENCE_KEYS)})")
        if not (r.get("doi") or r.get("arxiv") or r.get("url")):
            raise CardiobenchError(f"{where}: needs a doi, an arxiv id or a url")
        if r.get("url") and not str(r["url"]).startswith(("https://", "http://")):
            raise CardiobenchError(f"{where}: url must start with https:// or http://, not {str(r['url'])[:40]!r}")
        for field in ("doi", "arxiv", "url"):
            if r.get(field) is not None and not isinstance(r[field], str):
                raise CardiobenchError(f"{where}: {field} must be quoted text (YAML read {r[field]!r}, a number)")
        out[key] = Reference(key, " ".join(str(r["citation"]).split()), r.get("doi"), r.get("arxiv"), r.get("url"))
    return out


def _number(path: Path, task: str, i: int, j: int, method: dict, number: dict, refs: dict[str, Reference],
            definitions: dict[str, str]) -> PublishedNumber:
    entry = {**{k: v for k, v in method.items() if k not in METHOD_ONLY}, **number}
    name = f"{path}: tasks.{task}[{i}] ({method.get('method', '?')}) numbers[{j}]"
    unknown = set(entry) - set(REQUIRED) - set(OPTIONAL)
    if unknown:
        raise CardiobenchError(f"{name}: unknown field {sorted(unknown)[0]!r} "
                               f"(fields: {', '.join(REQUIRED + OPTIONAL)})")
    missing = [k for k in REQUIRED if k not in entry]
    if missing:
        raise CardiobenchError(f"{name}: lacks {missing[0]!r}")
    if entry["source"] not in refs:
        raise CardiobenchError(f"{name}: source {entry['source']!r} is not a key of 'references'")
    if entry["kind"] not in KINDS:
        raise CardiobenchError(f"{name}: kind {entry['kind']!r} must be one of {', '.join(KINDS)}")
    if not isinstance(entry["same_data"], bool):
        raise CardiobenchError(f"{name}: same_data must be true or false, not {entry['same_data']!r}")
    if entry["n"] is not None and (not isinstance(entry["n"], int) or entry["n"] < 1):
        raise CardiobenchError(f"{name}: n must be a positive whole number or null (not reported), not {entry['n']!r}")
    if not isinstance(entry["value"], (int, float)) or isinstance(entry["value"], bool):
        raise CardiobenchError(f"{name}: value must be a number, not {entry['value']!r}")
    spec = load_task(task)
    metric = str(entry["metric"])
    if metric in spec.metrics:
        definition, ours = spec.metrics[metric].definition, True
    elif metric in definitions:
        definition, ours = definitions[metric], False
    else:
        raise CardiobenchError(f"{name}: metric {metric!r} is neither one of task {task!r}'s metrics nor declared "
                               f"under definitions.{task}")
    return PublishedNumber(task, str(entry["method"]), metric, float(entry["value"]), str(entry["mode"]),
                           str(entry["split"]), entry["n"], str(entry["unit"]), entry["same_data"], entry["kind"],
                           refs[entry["source"]], str(entry["where"]), definition, ours, entry.get("baseline"),
                           " ".join(str(entry.get("note") or "").split()))


@lru_cache(maxsize=None)
def _load_file(path: Path) -> tuple[PublishedNumber, ...]:
    data = _read(path)
    refs = _references(path, data)
    known = task_files()
    out = []
    for task, methods in (data.get("tasks") or {}).items():
        if task not in known:
            if path == PUBLISHED_FILE:
                raise CardiobenchError(f"{path}: tasks.{task}: no such task (known: {', '.join(sorted(known))})")
            continue  # an include folder's task whose folder is not on the path now
        definitions = (data.get("definitions") or {}).get(task) or {}
        for i, method in enumerate(methods or []):
            if not isinstance(method, dict) or not method.get("numbers"):
                raise CardiobenchError(f"{path}: tasks.{task}[{i}] needs 'numbers'")
            for j, number in enumerate(method["numbers"]):
                out.append(_number(path, task, i, j, method, number, refs, definitions))
    return tuple(out)


def load(task: str | None = None) -> list[PublishedNumber]:
    """Every published number (of ``task``), validated; CardiobenchError naming the file and entry."""
    numbers = [p for f in _files() if f.is_file() for p in _load_file(f)]
    return [p for p in numbers if task is None or p.task == task]


def _never(number: PublishedNumber) -> str:
    """The reasons that hold for every run: not measured, another definition, other data ("" if none)."""
    if number.kind != "measured":
        return "projection, not measured"
    if not number.ours:
        return "other definition"
    if not number.same_data:
        return "other data"
    return ""


def why_not_comparable(number: PublishedNumber, variant: str, twin: bool) -> str:
    """"" when a run of ``variant`` (on a twin or real data) may be compared with ``number``; else the reason."""
    if twin:
        return "synthetic twin: never compared with a paper's number"
    if _never(number):
        return _never(number)
    if number.mode != (variant or "standard"):
        return f"other protocol ({number.mode}; this run: {variant or 'standard'})"
    return ""


def context_reason(number: PublishedNumber) -> str:
    """Why a number can never be compared with a run, whatever the run ("" when some run could be)."""
    spec = load_task(number.task)
    if _never(number):
        return _never(number)
    if spec.modes and number.mode not in spec.protocols or not spec.variant and number.mode != "standard":
        return f"other protocol ({number.mode})"
    return ""


# ----------------------------------------------------------------------------- README tables

BEGIN, END = "<!-- published numbers: generated from leaderboards/published.yaml -->", "<!-- end of published numbers -->"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(tasks: list[str]) -> str:
    """The published numbers of ``tasks`` as a Markdown table (a family README's section)."""
    lines = ["| task | method | metric | value | protocol | test set | compared with runs | source |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for task in tasks:
        for p in load(task):
            recipe = f" (`{p.baseline}`)" if p.baseline else ""
            why = context_reason(p)
            lines.append("| " + " | ".join(_cell(c) for c in (
                f"`{task}`", p.method + recipe, f"`{p.metric}`", f"{p.value:g}",
                p.mode + ("" if p.kind == "measured" else f" ({p.kind})"), f"{p.split}; {p.size}",
                f"no: {why}" if why else "yes",
                (f"[{p.source.key}]({p.source.link})" if p.source.link else p.source.key) + f"; {p.where}")) + " |")
    return "\n".join([BEGIN, *lines, END])


def readme_section(readme: Path, tasks: list[str]) -> tuple[str, str]:
    """(the README's generated section as it is, as it should be)."""
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        return "", markdown_table(tasks)
    return text[text.index(BEGIN):text.index(END) + len(END)], markdown_table(tasks)


def write_readmes() -> list[Path]:
    """Rewrite every family README's generated published-numbers table (``python -m cardiobench.published``)."""
    from . import families

    changed = []
    for fam in families.families():
        readme = fam.folder / "README.md"
        now, want = readme_section(readme, list(fam.specs()))
        if now and now != want:
            readme.write_text(readme.read_text(encoding="utf-8").replace(now, want), encoding="utf-8")
            changed.append(readme)
    return changed


if __name__ == "__main__":
    for path in write_readmes():
        print(f"rewrote {path}")
