"""Decode-once cache: each sample preprocessed once into named ``.npy`` arrays, memory-mapped on use.

Layout (under ``<cache_dir>/arrays/<format>-<key>/``, ``key`` = a hash of the format and its full
preprocessing config, which ``config.json`` there spells out)::

    config.json       the preprocessing config this folder holds
    index.json        {sample: {source, source_size, source_mtime_ns, arrays: {name: {file, shape, dtype, crc32}},
                                meta: {...}}}
    <sample>.<name>.npy   one array (frames, image, label map, masks...), written atomically

An entry is reused only while its source file keeps the size and modification time it had when
preprocessed, and while each array's bytes still match their CRC-32; anything else (a changed
source, a truncated or corrupt file, an entry missing from the index after an interrupted build)
is preprocessed again, never trusted. Metadata (spacing, affine, original shape) rides along.
"""
from __future__ import annotations

import hashlib
import json
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import DataError
from ..io import atomic_path, file_lock, sweep_temporaries, write_json
from .problems import Problem

log = logging.getLogger("cardiobench")
CACHE_VERSION = 2

# preprocess(path) -> ({array name: array}, metadata)
Preprocess = Callable[[Path], tuple[dict[str, np.ndarray], dict[str, Any]]]


def cache_key(fmt: str, config: dict) -> str:
    text = json.dumps({"format": fmt, "config": config, "version": CACHE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_folder(cache_dir: str | Path, fmt: str, config: dict) -> Path:
    return Path(cache_dir).expanduser() / "arrays" / f"{fmt}-{cache_key(fmt, config)}"


def _signature(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _companion_signatures(paths: Sequence[Path]) -> list[list]:
    """[path, size, mtime_ns] of each companion file (size and mtime None where it does not exist)."""
    return [[str(p), *(_signature(p) if p.is_file() else (None, None))] for p in paths]


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"))


class ArrayCache:
    """Decode-once store for one format and one preprocessing config.

    An entry is valid while its source file keeps its size and mtime, and so do its ``companions``
    (the other files one sample is decoded from: a ground-truth mask, a label map, a metadata CSV),
    so editing any of them preprocesses the sample again.
    """

    def __init__(self, cache_dir: str | Path, fmt: str, config: dict, preprocess: Preprocess,
                 companions: Callable[[Path], Sequence[Path]] | None = None):
        self.folder = cache_folder(cache_dir, fmt, config)
        self.config, self.preprocess = config, preprocess
        self.companions = companions
        self.index_file = self.folder / "index.json"
        self.index: dict[str, dict] = self._read_index()

    def _read_index(self) -> dict[str, dict]:
        try:
            return json.loads(self.index_file.read_text()) if self.index_file.is_file() else {}
        except json.JSONDecodeError:
            log.warning("%s is corrupt; the cache index is rebuilt", self.index_file)
            return {}

    def valid(self, name: str, path: Path) -> bool:
        """Whether ``name``'s entry exists, matches its source's signature, and its files exist."""
        e = self.index.get(name)
        if e is None or not path.is_file():
            return False
        return ((e["source_size"], e["source_mtime_ns"]) == _signature(path) and e["source"] == str(path)
                and e.get("companions", []) == self._companions(path)
                and all((self.folder / a["file"]).is_file() for a in e["arrays"].values()))

    def _companions(self, path: Path) -> list[list]:
        return _companion_signatures([Path(p) for p in self.companions(path)]) if self.companions else []

    def _store(self, name: str, path: Path) -> dict:
        companions = self._companions(path)  # before decoding: an edit during it is seen next time
        arrays, meta = self.preprocess(path)
        entry = {}
        for key, a in arrays.items():
            file = f"{name}.{key}.npy"
            with atomic_path(self.folder / file) as tmp:
                np.save(tmp, a, allow_pickle=False)
            entry[key] = dict(file=file, shape=list(a.shape), dtype=str(a.dtype), crc32=_crc(a))
        size, mtime = _signature(path)
        out = dict(source=str(path), source_size=size, source_mtime_ns=mtime, arrays=entry, meta=meta)
        if companions:
            out["companions"] = companions
        return out

    def _write_index(self) -> None:
        write_json(self.folder / "config.json", {"config": self.config, "version": CACHE_VERSION})
        write_json(self.index_file, self.index)

    def build(self, names: Sequence[str], paths: Sequence[str | Path], workers: int = 2,
              progress: bool = True) -> tuple[int, list[Problem]]:
        """Preprocess every sample not yet validly cached; returns (samples preprocessed, problems)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # one builder at a time: runs starting together preprocess each sample once (the second
        # waits, then finds the entries valid), and a killed build's temporaries are swept safely
        with file_lock(self.folder.parent / f".{self.folder.name}.lock"):
            self.index = self._read_index()
            sweep_temporaries(self.folder, marker="config.json")
            if not (self.folder / "config.json").is_file():  # before any entry: the folder is the cache's
                write_json(self.folder / "config.json", {"config": self.config, "version": CACHE_VERSION})
            return self._build(names, paths, workers, progress)

    def _build(self, names: Sequence[str], paths: Sequence[str | Path], workers: int,
               progress: bool) -> tuple[int, list[Problem]]:
        todo = [(n, Path(p)) for n, p in zip(names, paths) if not self.valid(n, Path(p))]
        problems: list[Problem] = []

        def one(item):
            n, p = item
            try:
                return n, self._store(n, p)
            except (DataError, OSError) as exc:
                return n, str(exc)

        with ThreadPoolExecutor(max(1, workers)) as pool:
            for n, entry in tqdm(pool.map(one, todo), total=len(todo), desc="cache: preprocess", unit="sample",
                                 disable=not progress or not todo):
                if isinstance(entry, str):
                    path, _, msg = entry.partition(": ")
                    problems.append(Problem(path, f"{msg}; {n} skipped", sample=n))
                    self.index.pop(n, None)
                else:
                    self.index[n] = entry
        if todo:
            self._write_index()
        return len(todo) - len(problems), problems

    def _open(self, name: str) -> dict[str, np.ndarray] | None:
        """The entry's arrays memory-mapped, or None when one is missing, mis-shaped or fails its CRC."""
        out = {}
        for key, a in self.index[name]["arrays"].items():
            try:
                v = np.load(self.folder / a["file"], mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError):
                return None
            if list(v.shape) != a["shape"] or str(v.dtype) != a["dtype"] or _crc(v) != a["crc32"]:
                return None
            out[key] = v
        return out

    def get(self, name: str, path: str | Path) -> dict[str, np.ndarray]:
        """The cached arrays, memory-mapped and checked against their CRC (preprocessed again if corrupt)."""
        path = Path(path)
        if not self.valid(name, path):
            self.index[name] = self._store(name, path)
            self._write_index()
        arrays = self._open(name)
        if arrays is None:
            log.warning("cache entry %s/%s.* is corrupt (size or checksum); preprocessing %s again",
                        self.folder, name, path)
            self.index[name] = self._store(name, path)
            self._write_index()
            arrays = self._open(name)
        return arrays

    def meta(self, name: str) -> dict[str, Any]:
        return self.index[name]["meta"]


def load_samples(fmt: str, names: Sequence[str], paths: Sequence[str], config: dict, preprocess: Preprocess,
                 cache_dir: str | Path | None, workers: int = 2, progress: bool = True,
                 companions: Callable[[Path], Sequence[Path]] | None = None
                 ) -> tuple[list[dict[str, np.ndarray] | None], list[Problem]]:
    """Each sample's preprocessed arrays (None for those that failed, with their problems): through
    the decode-once cache when ``cache_dir`` is given, else decoded into memory. Each dict also holds
    the sample's metadata under ``"meta"`` (spacing, original shape...). ``companions(path)``: the
    other files a sample is decoded from (see :class:`ArrayCache`)."""
    if cache_dir is not None:
        cache = ArrayCache(cache_dir, fmt, config, preprocess, companions)
        _, problems = cache.build(names, paths, workers=workers, progress=progress)
        bad = {p.sample for p in problems}
        return [None if n in bad else {**cache.get(n, p), "meta": cache.meta(n)} for n, p in zip(names, paths)], \
            problems

    def one(item):
        n, p = item
        try:
            arrays, meta = preprocess(Path(p))
            return {**arrays, "meta": meta}
        except DataError as exc:
            return str(exc)

    out: list[dict[str, np.ndarray] | None] = []
    problems: list[Problem] = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for n, r in zip(names, tqdm(pool.map(one, zip(names, paths)), total=len(names), desc="decode",
                                    disable=not progress, unit="sample")):
            if isinstance(r, str):
                path, _, msg = r.partition(": ")
                problems.append(Problem(path, f"{msg}; {n} skipped", sample=n))
                out.append(None)
            else:
                out.append(r)
    return out, problems


def cache_size_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.npy")) if folder.is_dir() else 0
