"""Atomic file writes: a reader never sees a half-written file (temp file + rename)."""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


# Every temporary cardiobench writes is named ".cbtmp-<pid>-<8 random chars>-<target name>": a prefix no
# user file has, so sweeping left-overs can never take a user's own ".results.2026.csv" or ".notes.tmp".
TEMP_PREFIX = ".cbtmp-"
_TEMPORARY = re.compile(r"^\.cbtmp-\d+-[a-z0-9_]{8}-.+$")


def _temp_affixes(target: Path, suffix: str | None = None) -> tuple[str, str]:
    """(prefix, suffix) for ``mkstemp``/``mkdtemp`` naming a temporary of ``target`` as above; ``suffix``
    is kept last where a writer needs it (nibabel reads the extension, ``np.save`` appends ``.npy``)."""
    tail = f"-{target.name}"
    if suffix and not tail.endswith(suffix):
        tail += suffix
    return f"{TEMP_PREFIX}{os.getpid()}-", tail


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named as cardiobench names its temporaries (and nothing else is)."""
    return bool(_TEMPORARY.match(Path(path).name))


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, tail = _temp_affixes(path, suffix or path.suffix)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=tail)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the file the permissions a normal open() would (umask applied).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def staging_dir(beside: str | os.PathLike) -> Path:
    """A new empty folder next to ``beside``, named as a temporary (a killed writer's is swept)."""
    beside = Path(beside)
    prefix, tail = _temp_affixes(beside)
    return Path(tempfile.mkdtemp(dir=beside.parent, prefix=prefix, suffix=tail))


def sweep_temporaries(folder: str | os.PathLike, marker: str) -> list[Path]:
    """Delete the temporaries a killed writer left under ``folder`` (files and staging folders named by
    :func:`atomic_path` and :func:`staging_dir`); returns what was deleted. Nothing is deleted unless
    ``folder`` holds ``marker``, the file that makes it cardiobench's (a run's ``config.yaml``, the
    cache's ``config.json``, the site's lock): a folder of the user's is never swept. Call it only where
    no other process is writing: a resumed run's own folder, or under the lock of a shared one."""
    folder = Path(folder)
    if not (folder / marker).is_file():
        return []
    gone = []
    for p in sorted(folder.rglob(f"{TEMP_PREFIX}*"), key=lambda p: len(p.parts)):
        if is_temporary(p) and p.exists():
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            gone.append(p)
    return gone


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing): one holder at a time across
    processes; the kernel releases it when its holder dies, so a killed process never leaves it held."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def json_default(o: Any) -> Any:
    """``json.dumps``' ``default`` for numpy scalars and arrays and paths."""
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
