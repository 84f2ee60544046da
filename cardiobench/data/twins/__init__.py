"""Physically grounded phantom generators; labels are measured from the phantom geometry."""
from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from tqdm.auto import tqdm

from ...errors import DataError


@contextmanager
def twin_folder(out: str | os.PathLike, n: int) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write a twin into, renamed to ``out`` when the block ends
    without error (removed otherwise): a half-written twin is never seen."""
    out = Path(out)
    if n < 1:
        raise DataError(f"{out}: a twin needs at least one sample (n={n})")
    if out.exists():
        raise DataError(f"{out}: already exists; remove it or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def map_jobs(fn: Callable[[Any], Any], jobs: Sequence, workers: int, desc: str, unit: str, progress: bool = True,
             chunksize: int = 1) -> list:
    """``[fn(j) for j in jobs]`` with a progress bar, in ``workers`` processes when more than one (the
    results do not depend on ``workers``: each job carries its own seed)."""
    if workers > 1:
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            return list(tqdm(pool.map(fn, jobs, chunksize=chunksize), total=len(jobs), desc=desc,
                             disable=not progress, unit=unit))
    return [fn(j) for j in tqdm(jobs, desc=desc, disable=not progress, unit=unit)]
