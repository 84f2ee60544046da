"""Where a run's data comes from: the real dataset at ``data.root``, or the cached synthetic twin,
and how its samples are loaded (once, through the decode-once cache)."""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from omegaconf import DictConfig

from ..errors import DataError
from ..io import file_lock, write_text
from . import get_format
from .cache import load_samples
from .fingerprint import fingerprint
from .problems import Problem, problems_frame

log = logging.getLogger("cardiobench")


@dataclass(frozen=True)
class DataSource:
    root: Path
    is_twin: bool
    fingerprint: str


def data_fingerprint(root: Path, cfg: DictConfig) -> str:
    """The content fingerprint of ``root`` (:mod:`.fingerprint`), its digests memoised in the cache."""
    return fingerprint(root, cache_dir=cfg.data.cache_dir, workers=cfg.data.workers)


def twin_dir(cfg: DictConfig) -> Path:
    fmt = cfg.task.format
    version = get_format(fmt).twin_version
    return Path(cfg.data.cache_dir).expanduser() / "twins" / f"{fmt}-v{version}-n{cfg.data.twin.n}-s{cfg.data.twin.seed}"


def resolve_source(cfg: DictConfig) -> DataSource:
    """The real data folder when ``data.root`` is set; otherwise the twin, generated once and cached."""
    fmt = get_format(cfg.task.format)
    if cfg.data.root:
        root = Path(cfg.data.root).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: data.root is not a folder")
        return DataSource(root, False, data_fingerprint(root, cfg))
    root = twin_dir(cfg)
    banner = "=" * 78
    log.warning("%s\nNo data.root given: using the SYNTHETIC %s twin (%d %s, seed %d) at\n  %s\n"
                "Numbers from it are not comparable with the paper. Point data.root=... at the real data.\n%s",
                banner, cfg.task.format, cfg.data.twin.n, cfg.task.get("samples", "samples"), cfg.data.twin.seed,
                root, banner)
    if not root.is_dir():
        build_twin(fmt, root, cfg)
    return DataSource(root, True, data_fingerprint(root, cfg))


def build_twin(fmt, root: Path, cfg: DictConfig) -> None:
    """Write the twin into a staging folder and publish it by one rename, under a lock: runs starting
    together build it once (the others wait, then find it), and a killed build leaves only its staging
    folder, which the next run deletes and rebuilds; a partial twin is never served."""
    with file_lock(root.parent / f".{root.name}.lock"):
        if root.is_dir():  # another run published it while this one waited
            return
        staging = root.parent / f".{root.name}.building"
        # an interrupted build leaves the staging folder, or the generator's own temporary beside it
        for left in [staging, *root.parent.glob(f".{staging.name}.*")]:
            if left.exists():
                log.warning("%s: an interrupted twin build; rebuilding it", left)
                shutil.rmtree(left)
        fmt.synthesize(staging, n=cfg.data.twin.n, seed=cfg.data.twin.seed, workers=cfg.data.workers,
                       progress=cfg.progress)
        os.replace(staging, root)


def load(cfg: DictConfig, names: Sequence[str], paths: Sequence[str],
         size: int) -> tuple[list[dict[str, np.ndarray] | None], list[Problem]]:
    """Each sample's preprocessed arrays at ``size`` px (decode-once cache unless
    ``data.decoded_cache=false``), and the problems of those that failed (their entry is None)."""
    fmt = get_format(cfg.task.format)
    return load_samples(cfg.task.format, names, paths, fmt.preprocess_config(size),
                        lambda p: fmt.preprocess(p, fmt.preprocess_config(size)),
                        cfg.data.cache_dir if cfg.data.decoded_cache else None, workers=cfg.data.workers,
                        progress=cfg.progress, companions=getattr(fmt, "companions", None))


def report_problems(run_path: Path, problems: list[Problem]) -> None:
    """Write skipped.csv and log every problem (a run never drops a sample silently)."""
    if not problems:
        return
    write_text(run_path / "skipped.csv", problems_frame(problems).to_csv(index=False))
    for p in problems:
        log.warning("%s", p)
    log.warning("%d data problem(s); affected samples skipped, listed in %s", len(problems), run_path / "skipped.csv")
