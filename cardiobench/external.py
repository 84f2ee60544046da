"""Scoring predictions made outside cardiobench (``cardiobench evaluate --task T --predictions F``).

The predictions file is checked against the task's scored split (every sample exactly once, a
finite prediction for each, nothing extra), merged with the ground truth, and saved as a normal
run folder, so a new architecture joins the leaderboard without being written inside cardiobench.
"""
from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from . import tasks
from .config import CONF_DIR, load_task, register_configs, resolve
from .errors import CardiobenchError, DataError
from .runs import Run, git_commit, now_iso, versions
from .config import PROJECT_DIR


def compose(task: str, overrides: list[str], baseline: str | None = None, profile: str = "smoke") -> DictConfig:
    """The config a run of ``baseline`` (default: the task's reference) would use, plus ``overrides``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    base = [f"task={task}", f"baseline={baseline or load_task(task).reference_baseline}", f"profile={profile}"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=base + list(overrides))
    return resolve(cfg, list(overrides))


def _rows(mask: np.ndarray, limit: int = 8) -> str:
    """1-based line numbers in the file (line 1 is the header)."""
    lines = np.flatnonzero(mask) + 2
    return ", ".join(map(str, lines[:limit])) + (f" ... ({len(lines)} in all)" if len(lines) > limit else "")


def read_predictions(path: Path, task_module, expected: pd.DataFrame) -> pd.DataFrame:
    """Validated predictions aligned to ``expected``'s samples; DataError naming the rows otherwise."""
    if not path.is_file():
        raise DataError(f"{path}: predictions file not found")
    try:
        df = pd.read_csv(path, dtype={"sample_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    need = list(task_module.EXTERNAL_COLUMNS)
    missing = [c for c in need if c not in df.columns]
    if missing:
        cols = "; ".join(f"{k} ({v})" for k, v in task_module.EXTERNAL_COLUMNS.items())
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; a predictions file needs {cols}")
    problems = []
    ids = df.sample_id.fillna("").map(task_module.normalize_id)
    pred_cols = [c for c in need if c != "sample_id"]
    values = df[pred_cols].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        problems.append(f"missing, NaN or non-numeric prediction on line(s) {_rows(bad)}")
    empty = (ids == "").to_numpy()
    if empty.any():
        problems.append(f"empty sample_id on line(s) {_rows(empty)}")
    dup = ids.duplicated(keep=False).to_numpy() & ~empty
    if dup.any():
        names = sorted(set(ids[dup]))
        problems.append(f"duplicate sample_id {', '.join(names[:5])}{' ...' if len(names) > 5 else ''} "
                        f"on line(s) {_rows(dup)}")
    known = set(expected.sample_id)
    extra = (~ids.isin(known)).to_numpy() & ~empty
    if extra.any():
        problems.append(f"sample_id not in the {expected.split.iloc[0]} split on line(s) {_rows(extra)} "
                        f"({', '.join(ids[extra].head(5))})")
    absent = sorted(known - set(ids))
    if absent:
        problems.append(f"{len(absent)} {expected.split.iloc[0]} sample(s) have no prediction: "
                        f"{', '.join(absent[:8])}{' ...' if len(absent) > 8 else ''}")
    if problems:
        raise DataError(f"{path}: " + "; ".join(problems))
    df = df.assign(sample_id=ids)[["sample_id", *pred_cols]]
    df[pred_cols] = values
    return expected.merge(df, on="sample_id", how="left", validate="one_to_one")


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:60] or "external"


def evaluate_external(task: str, predictions: str | Path, name: str, overrides: list[str]) -> Run:
    """Score an external predictions file and save it as a finished run folder."""
    from .tasks.data_source import resolve_source

    predictions = Path(predictions)
    cfg = compose(task, overrides)
    module = tasks.get(task)
    if not hasattr(module, "EXTERNAL_COLUMNS"):
        raise CardiobenchError(f"task {task!r} does not score external predictions files yet "
                               f"(tasks that do: {', '.join(n for n, m in tasks.TASKS.items() if hasattr(m, 'EXTERNAL_COLUMNS'))})")
    source = resolve_source(cfg)
    merged = read_predictions(predictions, module, module.truth(source.root, cfg))
    merged["mode"] = "external"
    path = Path(cfg.runs_root) / task / "external" / f"{slug(name)}-{time.strftime('%Y%m%d-%H%M%S')}"
    run = Run(path)
    path.mkdir(parents=True, exist_ok=False)
    ext = OmegaConf.create({
        "task": OmegaConf.to_container(cfg.task, resolve=True),
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "baseline": {"name": name, "task": task, "title": f"external predictions: {name}", "published": []},
        "model": {"name": name}, "profile": {"name": "external"}, "seed": None, "runs_root": cfg.runs_root,
        "report": cfg.report, "progress": cfg.progress, "ci": OmegaConf.to_container(cfg.ci, resolve=True),
        "external": {"predictions": str(predictions.resolve()),
                     "sha256": hashlib.sha256(predictions.read_bytes()).hexdigest()},
    })
    run.write_config(ext)
    run.update_manifest(task=task, task_version=int(cfg.task.version), baseline=name, profile="external",
                        model=name, seed=None, status="running", started=now_iso(), versions=versions(),
                        git_commit=git_commit(PROJECT_DIR), command=f"evaluate --predictions {predictions}",
                        data={"root": str(source.root), "is_twin": source.is_twin, "fingerprint": source.fingerprint,
                              "format": cfg.task.format})
    run.write_predictions(merged)
    run.write_metrics(module.evaluate(run.predictions(), cfg))
    run.update_manifest(status="finished", ended=now_iso())
    return run
