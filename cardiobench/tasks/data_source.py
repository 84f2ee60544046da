"""Where a run's data comes from: the real dataset at ``data.root``, or the cached synthetic twin."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from ..data import echonet_dynamic
from ..errors import DataError

log = logging.getLogger("cardiobench")

FORMATS = {"echonet_dynamic": echonet_dynamic}
INDEX_FILES = {"echonet_dynamic": ("FileList.csv", "VolumeTracings.csv")}


@dataclass(frozen=True)
class DataSource:
    root: Path
    is_twin: bool
    fingerprint: str


def fingerprint(root: Path, fmt: str) -> str:
    """sha256 over the index files' bytes and every data file's name and size."""
    h = hashlib.sha256()
    for name in INDEX_FILES.get(fmt, ()):
        p = root / name
        h.update(name.encode())
        h.update(p.read_bytes() if p.is_file() else b"<missing>")
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in INDEX_FILES.get(fmt, ()):
            h.update(f"{p.relative_to(root)}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


def twin_dir(cfg: DictConfig) -> Path:
    fmt = cfg.task.format
    version = FORMATS[fmt].TWIN_VERSION
    return Path(cfg.data.cache_dir).expanduser() / "twins" / f"{fmt}-v{version}-n{cfg.data.twin.n}-s{cfg.data.twin.seed}"


def resolve_source(cfg: DictConfig) -> DataSource:
    """The real data folder when ``data.root`` is set; otherwise the twin, generated once and cached."""
    fmt = cfg.task.format
    if fmt not in FORMATS:
        raise DataError(f"no reader for format {fmt!r}")
    if cfg.data.root:
        root = Path(cfg.data.root).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: data.root is not a folder")
        return DataSource(root, False, fingerprint(root, fmt))
    root = twin_dir(cfg)
    banner = "=" * 78
    log.warning("%s\nNo data.root given: using the SYNTHETIC %s twin (%d videos, seed %d) at\n  %s\n"
                "Numbers from it are not comparable with the paper. Point data.root=... at the real data.\n%s",
                banner, fmt, cfg.data.twin.n, cfg.data.twin.seed, root, banner)
    if not root.is_dir():
        FORMATS[fmt].synthesize(root, n=cfg.data.twin.n, seed=cfg.data.twin.seed, workers=cfg.data.workers,
                                progress=cfg.progress)
    return DataSource(root, True, fingerprint(root, fmt))


def decode(cfg: DictConfig, names: list[str], paths: list[str], size: int) -> tuple[list, list]:
    """Each video's uint8 frames at ``size`` px (decode-once cache unless ``data.decoded_cache=false``),
    and the problems of those that failed (their entry is None)."""
    from ..data.cache import load_cached
    from ..data.clips import load_videos

    if cfg.data.get("decoded_cache", True):  # decode once, memory-map afterwards
        return load_cached(cfg.data.cache_dir, cfg.task.format, names, paths, size, workers=cfg.data.workers,
                           progress=cfg.progress)
    return load_videos(paths, size, names, progress=cfg.progress, workers=cfg.data.workers)


def report_problems(run_path: Path, problems: list) -> None:
    """Write skipped.csv and log every problem (a run never drops a sample silently)."""
    from ..data.problems import problems_frame

    if not problems:
        return
    problems_frame(problems).to_csv(run_path / "skipped.csv", index=False)
    for p in problems:
        log.warning("%s", p)
    log.warning("%d data problem(s); affected samples skipped, listed in %s", len(problems), run_path / "skipped.csv")
