"""The data fingerprint: which samples and labels a run saw, whatever the files' compression.

``fingerprint(root)`` is the first 16 hex digits of a sha256 over every file under ``root`` (sorted
by relative path): its path and the sha256 of its *decoded content*:

- NIfTI (``.nii``, ``.nii.gz``): the voxel array as nibabel reads it (dtype, shape, bytes, with
  scaling applied) and the affine. gzip level, gzip header (name, mtime) and header padding do not
  count; a changed voxel, dtype, shape or orientation does.
- AVI (``.avi``): the decoded grey frames (what the readers train on): a re-muxed file with the same
  frames has the same digest.
- anything else (the CSV indexes, Info.cfg, reports): its bytes, so a changed label changes it.

A file that cannot be decoded is digested by its bytes (``data verify`` reports it), and one that
cannot be read by its size, so a fingerprint never fails. Decoding every file is what the decode-once
cache does anyway; the digests are memoised per data folder under ``<cache_dir>/fingerprints/`` keyed by
each file's size and modification time, so only new or changed files are decoded again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from ..io import write_json

log = logging.getLogger("cardiobench")
DIGEST_VERSION = 1  # bump when a digest's definition changes: memoised digests are then recomputed


def _nifti_digest(path: Path) -> bytes:
    import nibabel as nib

    img = nib.load(str(path))
    data = np.ascontiguousarray(np.asanyarray(img.dataobj))
    h = hashlib.sha256(f"nifti:{data.dtype.str}:{data.shape}".encode())
    h.update(memoryview(data).cast("B"))
    h.update(np.ascontiguousarray(img.affine, dtype=np.float64).tobytes())
    return h.digest()


def _avi_digest(path: Path) -> bytes:
    from .video import read_avi

    frames = np.ascontiguousarray(read_avi(path))
    h = hashlib.sha256(f"avi:{frames.dtype.str}:{frames.shape}".encode())
    h.update(memoryview(frames).cast("B"))
    return h.digest()


def _bytes_digest(path: Path) -> bytes:
    h = hashlib.sha256(b"bytes:")
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.digest()


def _decoder(path: Path) -> Callable[[Path], bytes] | None:
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return _nifti_digest
    if name.endswith(".avi"):
        return _avi_digest
    return None


def content_digest(path: Path) -> str:
    """sha256 (hex) of one file's decoded content (see the module's docstring)."""
    decode = _decoder(path)
    try:
        if decode is not None:
            try:
                return decode(path).hex()
            except Exception:  # noqa: BLE001 - undecodable: its bytes identify it (verify says why)
                pass
        return _bytes_digest(path).hex()
    except OSError:
        return hashlib.sha256(f"unreadable:{path.stat().st_size}".encode()).hexdigest()


def _files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file()]


def _memo_file(cache_dir: str | os.PathLike, root: Path) -> Path:
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return Path(cache_dir).expanduser() / "fingerprints" / f"{key}.json"


def _read_memo(path: Path | None, root: Path) -> dict[str, list]:
    if path is None or not path.is_file():
        return {}
    try:
        memo = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # a damaged memo is only a lost shortcut
    if memo.get("version") != DIGEST_VERSION or memo.get("root") != str(root.resolve()):
        return {}
    return memo.get("files", {}) if isinstance(memo.get("files"), dict) else {}


def file_digests(root: Path, cache_dir: str | os.PathLike | None = None, workers: int = 2) -> dict[str, str]:
    """{relative path: content digest} of every file under ``root``; reuses memoised digests of
    files whose size and modification time are unchanged."""
    root = Path(root)
    memo_path = _memo_file(cache_dir, root) if cache_dir else None
    memo = _read_memo(memo_path, root)
    stats = {str(p.relative_to(root)): p.stat() for p in _files(root)}
    todo = [rel for rel, st in stats.items() if memo.get(rel, [None, None])[:2] != [st.st_size, st.st_mtime_ns]]
    with ThreadPoolExecutor(max(1, int(workers))) as pool:  # decoders and sha256 release the GIL
        fresh = dict(zip(todo, pool.map(content_digest, (root / rel for rel in todo))))
    digests = {rel: fresh[rel] if rel in fresh else memo[rel][2] for rel in stats}
    if memo_path is not None and todo:
        files_memo = {rel: [st.st_size, st.st_mtime_ns, digests[rel]] for rel, st in stats.items()}
        try:
            write_json(memo_path, {"version": DIGEST_VERSION, "root": str(root.resolve()), "files": files_memo})
        except OSError as e:  # a read-only cache costs the shortcut, not the run
            log.warning("%s: could not memoise the data digests (%s)", memo_path, e.strerror or e)
    return digests


def fingerprint(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None, workers: int = 2) -> str:
    """The data fingerprint of the folder ``root`` (16 hex digits; see the module's docstring)."""
    h = hashlib.sha256(f"cardiobench-data-fingerprint:{DIGEST_VERSION}\n".encode())
    for rel, digest in sorted(file_digests(Path(root), cache_dir, workers).items()):
        h.update(f"{rel}\0{digest}\n".encode())
    return h.hexdigest()[:16]
