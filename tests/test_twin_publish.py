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
    inner = root.parent / f".{staging.name}.x1y2z3"  # and the generator's own temporary folder (twin_folder)
    inner.mkdir()
    assert not root.exists()  # the run folder's reader never sees the staging folder
    build_twin(fmt, root, _cfg())
    assert fmt.builds == 1 and not staging.exists() and not inner.exists()
    assert sorted(p.name for p in root.iterdir()) == sorted(f"case{i}.txt" for i in range(10))
    assert (root / "case0.txt").read_text() == "3"


def test_sweep_removes_only_what_a_killed_writer_left(tmp_path):
    from cardiobench.io import atomic_path, sweep_temporaries

    with atomic_path(tmp_path / "kept.csv") as tmp:
        tmp.write_text("a\n")
    (tmp_path / "config.yaml").write_text("seed: 0\n")  # the marker: a run folder
    left = [tmp_path / ".cbtmp-4242-k3x_9a2b-last.pt", tmp_path / "sub" / ".cbtmp-7-abcd1234-predictions.csv",
            tmp_path / ".cbtmp-4242-q1w2e3r4-tokenizer"]
    left[1].parent.mkdir()
    left[0].write_bytes(b"half")
    left[1].write_text("half")
    left[2].mkdir()
    (left[2] / "vocab.txt").write_text("[PAD]\n")
    kept = [tmp_path / ".render.lock", tmp_path / ".echonet_dynamic-v1-n450-s0.lock", tmp_path / ".hidden_config",
            tmp_path / ".last.pt.k3x_9a2b.pt", tmp_path / "sub" / ".predictions.csv.abcd1234.csv"]  # old-style names
    for k in kept:
        k.write_text("")
    assert sweep_temporaries(tmp_path, marker="manifest.json") == []  # no marker: never swept
    assert sorted(sweep_temporaries(tmp_path, marker="config.yaml")) == sorted(left)
    assert all(k.exists() for k in kept) and (tmp_path / "kept.csv").read_text() == "a\n"


def test_runs_starting_together_preprocess_each_sample_once(tmp_path):
    """The decode-once cache is built under a lock: the second builder waits, then finds every entry."""
    import numpy as np

    from cardiobench.data.cache import ArrayCache

    sources = []
    for i in range(6):
        sources.append(tmp_path / f"s{i}.txt")
        sources[-1].write_text(str(i))
    calls = []

    def preprocess(path):
        calls.append(path.name)
        time.sleep(0.05)
        return {"x": np.full(3, int(path.read_text()), np.float32)}, {}

    done = []

    def build():
        cache = ArrayCache(tmp_path / "cache", "fake", {"size": 1}, preprocess)
        done.append(cache.build([p.stem for p in sources], sources, workers=1, progress=False))

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(calls) == sorted(p.name for p in sources)  # each sample once
    assert sorted(n for n, _ in done) == [0, 6]
