"""Decode-once cache: each video's frames as a uint8 ``.npy`` file, memory-mapped on use.

Layout (under ``<cache_dir>/decoded/<format>-s<size>-v<version>/``)::

    index.json        {name: {source, source_size, source_mtime_ns, frames, crc32, file}}
    <name>.npy        (frames, size, size) uint8, written atomically

An entry is reused only while its source file keeps the size and modification time it had when
decoded, and while its bytes still match their CRC-32; anything else (a changed source, a
truncated or corrupt entry, an entry missing from the index after an interrupted build) is
decoded again. Keying the folder by frame size and version keeps preprocessing variants apart.
"""
from __future__ import annotations

import json
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm.auto import tqdm

from ..errors import DataError
from ..io import atomic_path, write_json
from .problems import Problem
from .video import read_avi

log = logging.getLogger("cardiobench")
CACHE_VERSION = 1


def cache_folder(cache_dir: str | Path, fmt: str, size: int) -> Path:
    return Path(cache_dir).expanduser() / "decoded" / f"{fmt}-s{size}-v{CACHE_VERSION}"


def _signature(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"))


class DecodedCache:
    """Decode-once store for one dataset format and frame size."""

    def __init__(self, cache_dir: str | Path, fmt: str, size: int):
        self.folder = cache_folder(cache_dir, fmt, size)
        self.size = size
        self.index_file = self.folder / "index.json"
        try:
            self.index: dict[str, dict] = json.loads(self.index_file.read_text()) if self.index_file.is_file() else {}
        except json.JSONDecodeError:
            log.warning("%s is corrupt; the cache index is rebuilt", self.index_file)
            self.index = {}

    def _decode(self, path: Path) -> np.ndarray:
        v = read_avi(path)
        if v.shape[1:] != (self.size, self.size):
            v = np.stack([cv2.resize(f, (self.size, self.size), interpolation=cv2.INTER_AREA) for f in v])
        return v

    def valid(self, name: str, path: Path) -> bool:
        """Whether ``name``'s entry exists, matches its source's signature, and its file has the right length."""
        e = self.index.get(name)
        if e is None or not path.is_file():
            return False
        f = self.folder / e["file"]
        return ((e["source_size"], e["source_mtime_ns"]) == _signature(path) and f.is_file()
                and e["source"] == str(path))

    def _store(self, name: str, path: Path) -> dict:
        v = self._decode(path)
        file = f"{name}.npy"
        with atomic_path(self.folder / file) as tmp:
            np.save(tmp, v, allow_pickle=False)
        size, mtime = _signature(path)
        return dict(source=str(path), source_size=size, source_mtime_ns=mtime, frames=len(v), crc32=_crc(v),
                    file=file)

    def build(self, names: Sequence[str], paths: Sequence[str | Path], workers: int = 2,
              progress: bool = True) -> tuple[int, list[Problem]]:
        """Decode every video not yet validly cached; returns (videos decoded, problems)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        todo = [(n, Path(p)) for n, p in zip(names, paths) if not self.valid(n, Path(p))]
        problems: list[Problem] = []

        def one(item):
            n, p = item
            try:
                return n, self._store(n, p)
            except (DataError, OSError) as exc:
                return n, str(exc)

        with ThreadPoolExecutor(max(1, workers)) as pool:
            for n, entry in tqdm(pool.map(one, todo), total=len(todo), desc="cache: decode videos", unit="video",
                                 disable=not progress or not todo):
                if isinstance(entry, str):
                    path, _, msg = entry.partition(": ")
                    problems.append(Problem(path, f"{msg}; {n} skipped", sample=n))
                    self.index.pop(n, None)
                else:
                    self.index[n] = entry
        if todo:
            write_json(self.index_file, self.index)
        return len(todo) - len(problems), problems

    def get(self, name: str, path: str | Path) -> np.ndarray:
        """The cached frames, memory-mapped and checked against their CRC (re-decoded if corrupt)."""
        path = Path(path)
        if not self.valid(name, path):
            self.index[name] = self._store(name, path)
            write_json(self.index_file, self.index)
        e = self.index[name]
        try:
            v = np.load(self.folder / e["file"], mmap_mode="r", allow_pickle=False)
            ok = v.shape == (e["frames"], self.size, self.size) and v.dtype == np.uint8 and _crc(v) == e["crc32"]
        except (ValueError, OSError):
            ok = False
        if not ok:
            log.warning("cache entry %s is corrupt (size or checksum); decoding %s again", self.folder / e["file"], path)
            self.index[name] = self._store(name, path)
            write_json(self.index_file, self.index)
            v = np.load(self.folder / self.index[name]["file"], mmap_mode="r", allow_pickle=False)
        return v


def load_cached(cache_dir: str | Path, fmt: str, names: Sequence[str], paths: Sequence[str], size: int,
                workers: int = 2, progress: bool = True) -> tuple[list[np.ndarray | None], list[Problem]]:
    """Like :func:`cardiobench.data.clips.load_videos`, through the decode-once cache."""
    cache = DecodedCache(cache_dir, fmt, size)
    _, problems = cache.build(names, paths, workers=workers, progress=progress)
    bad = {p.sample for p in problems}
    videos = [None if n in bad else cache.get(n, p) for n, p in zip(names, paths)]
    return videos, problems


def cache_size_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.npy")) if folder.is_dir() else 0


