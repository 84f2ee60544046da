"""Decode-once cache (issue 4): a training clip from the cache vs decoding the AVI per item.

The original EchoNet-Dynamic loader decodes the whole AVI with OpenCV in every ``__getitem__``
and then slices a clip; ours memory-maps the cached uint8 frames once and slices. Both are timed
here on the same videos (paper clip: 32 frames every 2nd, 112 px), and the cache build throughput
is recorded.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import best_time

from cardiobench.data.cache import ArrayCache
from cardiobench.data.video import read_avi
from cardiobench.tasks.echonet import format as echonet_dynamic

FRAMES, PERIOD = 32, 2


def _clip(video: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    span = (FRAMES - 1) * PERIOD + 1
    start = int(rng.integers(0, max(1, len(video) - span + 1)))
    return np.asarray(video[start:start + span:PERIOD], dtype=np.float32)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = echonet_dynamic.synthesize(tmp_path_factory.mktemp("bench") / "echonet", n=40, seed=5, progress=False)
    ds = echonet_dynamic.read(root, tracings=False)
    return list(ds.samples.FileName), list(ds.samples.path), tmp_path_factory.mktemp("cache")


def test_clip_from_cache_vs_decoding_avi(benchmark, twin, repeats):
    names, paths, cache_dir = twin
    config = echonet_dynamic.preprocess_config(112)
    cache = ArrayCache(cache_dir, "echonet_dynamic", config, lambda p: echonet_dynamic.preprocess(p, config))
    t0 = time.perf_counter()
    cache.build(names, paths, workers=2, progress=False)
    build_s = time.perf_counter() - t0
    videos = [cache.get(n, p)["frames"] for n, p in zip(names, paths)]  # what EchoClips holds: memory maps

    def original():  # EchoNet-Dynamic's loader: decode the whole AVI for every item
        rng = np.random.default_rng(0)
        for p in paths:
            _clip(read_avi(p), rng)

    def cached():
        rng = np.random.default_rng(0)
        for v in videos:
            _clip(v, rng)

    t_orig = best_time(original, repeat=repeats(3)) / len(paths)
    t_cache = best_time(cached, repeat=repeats(5) + 2) / len(paths)
    benchmark.extra_info.update(decode_per_item_ms=1e3 * t_orig, cache_per_item_ms=1e3 * t_cache,
                                speedup=t_orig / t_cache, build_videos_per_s=len(paths) / build_s)
    benchmark.pedantic(cached, rounds=repeats(5), iterations=1)
    print(f"\nper training clip: decode AVI {1e3 * t_orig:.2f} ms, cache {1e3 * t_cache:.3f} ms, "
          f"speedup {t_orig / t_cache:.0f}x; cache build {len(paths) / build_s:.1f} videos/s (2 threads, 112 px)")
    assert t_orig / t_cache >= 20
