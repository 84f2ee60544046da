"""Twins are built once and published atomically: concurrent runs, killed builds (issue 17)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from omegaconf import OmegaConf

from cardiobench.data.source import build_twin


class _SlowFormat:
    """A format whose twin takes a while to write, counting its builds."""

    def __init__(self):
        self.builds = 0

    def synthesize(self, out, n, seed, workers=2, progress=True):
        self.builds += 1
        out = Path(out)
        out.mkdir(parents=True)
        for i in range(n):
            (out / f"case{i}.txt").write_text(str(seed))
            time.sleep(0.02)
        return out


def _cfg() -> OmegaConf:
    return OmegaConf.create({"data": {"twin": {"n": 10, "seed": 3}, "workers": 1}, "progress": False})


def test_runs_starting_together_build_the_twin_once(tmp_path):
    fmt, root = _SlowFormat(), tmp_path / "twins" / "fake-v1-n10-s3"
    seen = []

    def run():
        if not root.is_dir():
            build_twin(fmt, root, _cfg())
        seen.append(sorted(p.name for p in root.iterdir()))  # what each run then reads: the whole twin

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fmt.builds == 1
    assert all(len(s) == 10 for s in seen)
    assert not (root.parent / f".{root.name}.building").exists()


def test_a_killed_build_is_never_served_and_is_rebuilt(tmp_path):
    fmt, root = _SlowFormat(), tmp_path / "twins" / "fake-v1-n10-s3"
    staging = root.parent / f".{root.name}.building"
    staging.mkdir(parents=True)
    (staging / "case0.txt").write_text("half")  # what a SIGKILL during generation leaves
    assert not root.exists()  # the run folder's reader never sees the staging folder
    build_twin(fmt, root, _cfg())
    assert fmt.builds == 1 and not staging.exists()
    assert sorted(p.name for p in root.iterdir()) == sorted(f"case{i}.txt" for i in range(10))
    assert (root / "case0.txt").read_text() == "3"
