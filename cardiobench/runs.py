"""The run folder: the contract between training and everything after it.

::

    runs/<task>/<baseline>/<run_id>/
      config.yaml      resolved config, written before training starts
      manifest.json    seed, versions, git commit, data fingerprint, device, wall times, status
      predictions.csv  sample_id, patient_id, split, targets, predictions
      metrics.json     {metric: {value, low, high, level, method, n}}
      checkpoints/     last.pt (resume) and best.pt
      log.txt
"""
from __future__ import annotations

import json
import platform
import subprocess
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from . import __version__
from .errors import CardiobenchError
from .io import file_lock, is_temporary, write_json, write_text

STATUSES = ("running", "finished", "failed", "interrupted")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_commit(path: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    """Versions of what produced a run (read from package metadata: scoring a run imports no torch)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"cardiobench": __version__, "python": platform.python_version()}
    for pkg in ("torch", "torchvision", "numpy", "scipy", "pandas"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


@dataclass
class Run:
    """A run folder on disk."""

    path: Path
    shared_checkpoints: Path | None = None  # a torchrun rank other than 0: rank 0's checkpoints (read only)

    config_file = property(lambda self: self.path / "config.yaml")
    manifest_file = property(lambda self: self.path / "manifest.json")
    predictions_file = property(lambda self: self.path / "predictions.csv")
    metrics_file = property(lambda self: self.path / "metrics.json")
    checkpoints = property(lambda self: self.shared_checkpoints or self.path / "checkpoints")
    log_file = property(lambda self: self.path / "log.txt")

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        """An existing run folder (it must hold config.yaml)."""
        run = cls(Path(path))
        if not run.config_file.is_file():
            raise CardiobenchError(f"{run.path}: not a run folder (no config.yaml)")
        return run

    def config(self) -> DictConfig:
        try:
            cfg = OmegaConf.load(self.config_file)
        except Exception as exc:  # YAML's and OmegaConf's many errors: one line naming the file
            raise CardiobenchError(f"{self.config_file}: not a readable config ({str(exc).splitlines()[0]})") from None
        if not isinstance(cfg, DictConfig):
            raise CardiobenchError(f"{self.config_file}: not a run's config (a YAML mapping is expected)")
        return cfg

    def manifest(self) -> dict[str, Any]:
        return _read_json(self.manifest_file)

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        m = self.manifest()
        m.update(fields)
        write_json(self.manifest_file, m)
        return m

    def write_config(self, cfg: DictConfig) -> None:
        write_text(self.config_file, OmegaConf.to_yaml(cfg, resolve=True))

    def predictions(self) -> pd.DataFrame:
        if not self.predictions_file.is_file():
            raise CardiobenchError(f"{self.predictions_file}: not found (the run has not predicted yet)")
        try:
            return pd.read_csv(self.predictions_file, dtype={"sample_id": str, "patient_id": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise CardiobenchError(f"{self.predictions_file}: not a readable CSV file "
                                   f"({str(exc).splitlines()[0]})") from None

    def write_predictions(self, df: pd.DataFrame) -> None:
        write_text(self.predictions_file, df.to_csv(index=False, float_format="%.6f"))

    def metrics(self) -> dict[str, Any]:
        return _read_json(self.metrics_file)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.metrics_file, metrics)

    def artifact(self, name: str) -> Path:
        """Where the run keeps the artifact ``name`` (a file or folder a task's spec declares under
        ``artifacts``: split.csv, masks/, history.csv...)."""
        return self.path / name

    def write_table(self, name: str, table: pd.DataFrame) -> Path:
        """Write an artifact table as CSV, atomically; its path."""
        path = self.artifact(name)
        write_text(path, table.to_csv(index=False))
        return path

    def write_artifact(self, name: str, text: str) -> Path:
        """Write a text artifact (JSON, CSV already formatted), atomically; its path."""
        path = self.artifact(name)
        write_text(path, text)
        return path

    @property
    def finished(self) -> bool:
        return self.manifest().get("status") == "finished"

    def lock(self) -> AbstractContextManager[None]:
        """One writer at a time in this run folder (two ``evaluate RUN`` started together take turns)."""
        return file_lock(self.path / ".run.lock")


def _read_json(path: Path) -> dict[str, Any]:
    """A run's JSON file ({} when absent); CardiobenchError naming it when truncated or not an object."""
    if not path.is_file():
        return {}
    try:
        out = json.loads(path.read_text())
    except (ValueError, OSError) as exc:  # JSONDecodeError, UnicodeDecodeError, unreadable
        raise CardiobenchError(f"{path}: not readable JSON ({exc}); the file is truncated or damaged") from None
    if not isinstance(out, dict):
        raise CardiobenchError(f"{path}: not a JSON object")
    return out


def is_run_folder(path: str | Path) -> bool:
    """Whether ``path`` holds a run (its config.yaml, written first, or its manifest.json), or nothing
    but what a run killed while writing config.yaml leaves (its temporaries), or nothing at all."""
    path = Path(path)
    if (path / "config.yaml").is_file() or (path / "manifest.json").is_file():
        return True
    return all(is_temporary(p) for p in path.iterdir())


def default_run_dir(cfg: DictConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(cfg.runs_root) / cfg.task.name / cfg.baseline.name / f"{cfg.profile.name}-s{cfg.seed}-{stamp}"


def latest_unfinished(cfg: DictConfig) -> Path | None:
    """The newest unfinished run of this task/baseline/profile/seed (what ``resume=true`` continues)."""
    parent = Path(cfg.runs_root) / cfg.task.name / cfg.baseline.name
    found = sorted(parent.glob(f"{cfg.profile.name}-s{cfg.seed}-*"))
    for p in reversed(found):
        if (p / "config.yaml").is_file() and not Run(p).finished:
            return p
    return None


def find_runs(paths: list[str | Path]) -> list[Run]:
    """Every run folder at or below the given paths."""
    out = []
    for p in map(Path, paths):
        if (p / "config.yaml").is_file():
            out.append(Run(p))
        elif p.is_dir():
            out.extend(Run(c.parent) for c in sorted(p.rglob("config.yaml")) if "_multirun" not in c.parts
                       and (c.parent / "manifest.json").is_file())
    return out
