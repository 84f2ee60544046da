"""Decode-once cache: same frames as decoding, reuse, rebuild on source change, corruption detected."""
from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest

from cardiobench.data import echonet_dynamic
from cardiobench.data.cache import DecodedCache, load_cached
from cardiobench.data.video import read_avi

from .conftest import cli


@pytest.fixture()
def data(twin, tmp_path):
    root = tmp_path / "echonet"
    shutil.copytree(twin, root)
    ds = echonet_dynamic.read(root, tracings=False)
    return root, list(ds.samples.FileName), list(ds.samples.path)


def _decoded(path, size):
    v = read_avi(path)
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in v])


def test_cache_matches_decoding_and_is_reused(data, tmp_path):
    root, names, paths = data
    cache = DecodedCache(tmp_path / "c", "echonet_dynamic", 32)
    done, problems = cache.build(names, paths, progress=False)
    assert done == len(names) and not problems
    for n, p in zip(names[:5], paths[:5]):
        v = cache.get(n, p)
        assert isinstance(v, np.memmap) and np.array_equal(v, _decoded(p, 32))
    again = DecodedCache(tmp_path / "c", "echonet_dynamic", 32)
    assert again.build(names, paths, progress=False) == (0, [])
    # Another frame size is another cache: preprocessing is part of the key.
    assert DecodedCache(tmp_path / "c", "echonet_dynamic", 24).folder != cache.folder


def test_changed_source_is_decoded_again(data, tmp_path):
    root, names, paths = data
    cache = DecodedCache(tmp_path / "c", "echonet_dynamic", 32)
    cache.build(names, paths, progress=False)
    shutil.copy(paths[1], paths[0])  # video 0 now has other content
    os.utime(paths[0], ns=(1, 1))
    again = DecodedCache(tmp_path / "c", "echonet_dynamic", 32)
    assert again.build(names, paths, progress=False) == (1, [])
    assert np.array_equal(again.get(names[0], paths[0]), _decoded(paths[1], 32))


def test_corrupt_entry_is_detected_not_trusted(data, tmp_path, caplog):
    root, names, paths = data
    cache = DecodedCache(tmp_path / "c", "echonet_dynamic", 32)
    cache.build(names, paths, progress=False)
    f = cache.folder / cache.index[names[2]]["file"]
    raw = bytearray(f.read_bytes())
    raw[-100:] = bytes(100)  # flip the last frame's bytes: same size, wrong checksum
    f.write_bytes(bytes(raw))
    v = DecodedCache(tmp_path / "c", "echonet_dynamic", 32).get(names[2], paths[2])
    assert np.array_equal(v, _decoded(paths[2], 32))
    assert "corrupt" in caplog.text
    (cache.folder / "index.json").write_text("{not json")  # an interrupted index write
    assert DecodedCache(tmp_path / "c", "echonet_dynamic", 32).build(names, paths, progress=False)[0] == len(names)
    assert json.loads((cache.folder / "index.json").read_text())[names[0]]["frames"] > 0


def test_undecodable_video_is_a_problem_not_a_crash(data, tmp_path):
    root, names, paths = data
    open(paths[3], "wb").close()  # zero bytes
    videos, problems = load_cached(tmp_path / "c", "echonet_dynamic", names, paths, 32, progress=False)
    assert videos[3] is None and len(problems) == 1 and names[3] in problems[0].problem
    assert all(v is not None for i, v in enumerate(videos) if i != 3)


def test_cache_command(twin, tmp_path):
    proc = cli("data", "cache", "echonet_dynamic", str(twin), "--size", "32", "--cache-dir", str(tmp_path), check=True)
    assert "videos/s" in proc.stdout and "24 video(s) decoded" in proc.stdout
