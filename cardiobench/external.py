"""Scoring predictions made outside cardiobench (``cardiobench evaluate --task T --predictions F``).

The task spec's ``external`` section says what such a file holds. A CSV is checked against the
task's scored split (every sample exactly once, a finite prediction for each, nothing extra; the
rows at fault named by line), merged with the ground truth from the format's index, and saved as a
normal run folder, so a new architecture joins the leaderboard without being written inside
cardiobench. No torch is imported.
"""
from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from .config import PROJECT_DIR, compose, load_task, task_names
from .data import get_format
from .data.source import DataSource, resolve_source
from .errors import CardiobenchError, DataError
from .evaluation import evaluate
from .runs import Run, git_commit, now_iso, versions
from .spec import TaskSpec


def _rows(mask: np.ndarray, ids: pd.Series | None = None, limit: int = 8) -> str:
    """1-based line numbers in the file (line 1 is the header), each with its row's id when known."""
    where = np.flatnonzero(mask)
    shown = [f"{i + 2} ({ids.iloc[i]})" if ids is not None and ids.iloc[i] else str(i + 2) for i in where[:limit]]
    return ", ".join(shown) + (f" ... ({len(where)} in all)" if len(where) > limit else "")


def truth(spec: TaskSpec, source: DataSource) -> pd.DataFrame:
    """The scored split's ground truth from the format's index: row keys, patient, split, targets."""
    samples, _ = get_format(spec.format).index(source.root)
    rows = samples[samples.split == spec.split]
    missing = [t for t in spec.targets if t not in rows.columns]
    if missing:
        raise CardiobenchError(f"task {spec.name!r}: the {spec.format} index has no column {', '.join(missing)}; "
                               f"its ground truth comes from a run, not from the data folder")
    cols = [*spec.row_keys, spec.cluster, "split", *spec.targets]
    out = rows[cols].reset_index(drop=True)
    out[spec.cluster] = out[spec.cluster].astype(str)
    return out


def read_predictions(path: Path, spec: TaskSpec, expected: pd.DataFrame) -> pd.DataFrame:
    """Validated predictions aligned to ``expected``'s samples; DataError naming the rows otherwise."""
    if not path.is_file():
        raise DataError(f"{path}: predictions file not found")
    key = spec.external.key or spec.row_keys[0]
    rename = dict(spec.external.rename)
    file_key = next((c for c, ours in rename.items() if ours == key), key)
    if expected[key].duplicated().any():
        raise DataError(f"{path}: some {spec.split} {key} has several samples, so predictions keyed by {key} are "
                        f"ambiguous")
    try:
        df = pd.read_csv(path, dtype={file_key: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    columns = {file_key: f"the sample's id ({spec.external.note or 'as in the data'})", **spec.external.columns}
    missing = [c for c in columns if c not in df.columns]
    if missing:
        need = "; ".join(f"{k} ({v})" for k, v in columns.items())
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; a predictions file needs {need}")
    problems = []
    ids = df[file_key].fillna("").map(get_format(spec.format).normalize_id)
    pred_cols = list(spec.external.columns)
    values = df[pred_cols].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        problems.append(f"missing, NaN or non-numeric prediction on line(s) {_rows(bad, ids)}")
    empty = (ids == "").to_numpy()
    if empty.any():
        problems.append(f"empty {key} on line(s) {_rows(empty)}")
    dup = ids.duplicated(keep=False).to_numpy() & ~empty
    if dup.any():
        names = sorted(set(ids[dup]))
        problems.append(f"duplicate {key} {', '.join(names[:5])}{' ...' if len(names) > 5 else ''} "
                        f"on line(s) {_rows(dup, ids)}")
    known = set(expected[key])
    extra = (~ids.isin(known)).to_numpy() & ~empty
    if extra.any():
        problems.append(f"{key} not in the {spec.split} split on line(s) {_rows(extra, ids)}")
    absent = sorted(known - set(ids))
    if absent:
        problems.append(f"{len(absent)} {spec.split} sample(s) have no prediction: "
                        f"{', '.join(absent[:8])}{' ...' if len(absent) > 8 else ''}")
    if problems:
        raise DataError(f"{path}: " + "; ".join(problems))
    ours = [rename.get(c, c) for c in pred_cols]
    df = pd.DataFrame(values, columns=ours).assign(**{key: ids.to_numpy()})[[key, *ours]]
    return expected.merge(df, on=key, how="left", validate="one_to_one")


def score_masks(folder: Path, spec: TaskSpec, source: DataSource, cfg: DictConfig) -> pd.DataFrame:
    """predictions.csv rows of a folder of predicted masks, scored by the spec's ``external.scorer``
    against the scored split's ground truth (the scorer refuses missing or malformed masks by file)."""
    from .evaluation.metrics import get_metric  # the same ``module:function`` resolution as metrics

    samples, _ = get_format(spec.format).index(source.root)
    samples = samples[samples.split == spec.split].reset_index(drop=True)
    if samples.empty:
        raise DataError(f"{source.root}: no {spec.split} samples to score masks against")
    scorer = get_metric(spec.external.scorer)
    return scorer(folder, samples, source.root, cfg)


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:60] or "external"


def _sha256(path: Path) -> str:
    """Of a file, or of a folder's files (names and bytes, in name order)."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if p.is_file():
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def external_config(cfg: DictConfig, name: str, predictions: Path) -> DictConfig:
    """The config.yaml of an external run: the task, the data, and where the predictions came from."""
    return OmegaConf.create({
        "task": OmegaConf.to_container(cfg.task, resolve=True),
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "baseline": {"name": name, "task": cfg.task.name, "title": f"external predictions: {name}"},
        "model": {"name": name}, "profile": {"name": "external"}, "seed": None, "runs_root": cfg.runs_root,
        "site_dir": cfg.site_dir, "report": cfg.report, "progress": cfg.progress,
        "ci": OmegaConf.to_container(cfg.ci, resolve=True),
        "external": {"predictions": str(predictions.resolve()),
                     "sha256": _sha256(predictions)},
    })


def evaluate_external(task: str, predictions: str | Path, name: str, overrides: list[str]) -> Run:
    """Score an external predictions file and save it as a finished run folder."""
    predictions = Path(predictions)
    spec = load_task(task)
    if spec.external is None:
        able = [t for t in task_names() if load_task(t).external is not None]
        raise CardiobenchError(f"task {task!r} does not score external predictions files "
                               f"(tasks that do: {', '.join(able) or 'none'})")
    cfg = compose(task, overrides=overrides)  # the overrides are checked first: a misspelled key is named
    if not predictions.exists():  # before resolve_source, which may spend a minute building a twin
        raise DataError(f"{predictions}: predictions {'folder' if spec.external.kind == 'masks' else 'file'} not found")
    source = resolve_source(cfg)
    if spec.external.kind == "masks":
        merged = score_masks(predictions, spec, source, cfg)
    else:
        merged = read_predictions(predictions, spec, truth(spec, source))
        if spec.variant:
            merged[spec.variant] = "external"
    run = Run(new_folder(Path(cfg.runs_root) / task / "external", f"{slug(name)}-{time.strftime('%Y%m%d-%H%M%S')}"))
    run.write_config(external_config(cfg, name, predictions))
    run.update_manifest(task=task, task_version=spec.version, baseline=name, profile="external",
                        model=name, seed=None, status="running", started=now_iso(), versions=versions(),
                        git_commit=git_commit(PROJECT_DIR), command=f"evaluate --predictions {predictions}",
                        data={"root": str(source.root), "is_twin": source.is_twin, "fingerprint": source.fingerprint,
                              "format": spec.format})
    try:
        run.write_predictions(merged)
        run.write_metrics(evaluate(run.predictions(), spec, cfg.ci,
                                   source=f"{run.predictions_file} (from {predictions})"))
    except KeyboardInterrupt:
        run.update_manifest(status="interrupted", ended=now_iso())
        raise
    except Exception as exc:  # a refused scoring never leaves the folder looking as if it were still running
        run.update_manifest(status="failed", ended=now_iso(), error=f"{type(exc).__name__}: {exc}")
        raise
    run.update_manifest(status="finished", ended=now_iso())
    return run


def new_folder(parent: Path, name: str) -> Path:
    """A new folder ``parent/name`` (``name-2``, ``-3``... when taken): two evaluations of one model
    started in the same second each get their own run folder."""
    parent.mkdir(parents=True, exist_ok=True)
    for k in range(1, 1000):
        path = parent / (name if k == 1 else f"{name}-{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise CardiobenchError(f"{parent}: could not make a new run folder named {name}-N")
