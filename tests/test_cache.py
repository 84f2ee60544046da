"""Decode-once cache: same arrays as decoding, several named arrays and metadata per entry, reuse,
the preprocessing config in the key, rebuild on source change, corruption detected."""
from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest

from cardiobench.data.cache import ArrayCache, load_samples
from cardiobench.data.video import read_avi
from cardiobench.tasks.echonet import format as echonet_dynamic

from .conftest import cli

CONFIG = echonet_dynamic.preprocess_config(32)


def _cache(tmp_path, config=CONFIG):
    return ArrayCache(tmp_path / "c", "echonet_dynamic", config, lambda p: echonet_dynamic.preprocess(p, config))


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
    cache = _cache(tmp_path)
    done, problems = cache.build(names, paths, progress=False)
    assert done == len(names) and not problems
    for n, p in zip(names[:5], paths[:5]):
        v = cache.get(n, p)["frames"]
        assert isinstance(v, np.memmap) and np.array_equal(v, _decoded(p, 32))
        assert cache.meta(n) == {"frames": len(v)}
    assert _cache(tmp_path).build(names, paths, progress=False) == (0, [])
    # Another preprocessing config (frame size) is another cache: the whole config is in the key.
    assert _cache(tmp_path, echonet_dynamic.preprocess_config(24)).folder != cache.folder
    assert json.loads((cache.folder / "config.json").read_text())["config"] == CONFIG


def test_several_named_arrays_and_metadata_per_entry(data, tmp_path):
    root, names, paths = data

    def two(path):  # e.g. an image and its label map, with the spacing they were resampled to
        v = _decoded(path, 16)
        return {"image": v.astype(np.float16), "labels": (v > 100).astype(np.uint8)}, {"spacing": [1.0, 0.5, 0.5]}

    cache = ArrayCache(tmp_path / "c", "toy", {"size": 16, "threshold": 100}, two)
    cache.build(names[:3], paths[:3], progress=False)
    got = ArrayCache(tmp_path / "c", "toy", {"size": 16, "threshold": 100}, two).get(names[1], paths[1])
    assert set(got) == {"image", "labels"} and got["image"].dtype == np.float16 and got["labels"].dtype == np.uint8
    assert np.array_equal(got["labels"], _decoded(paths[1], 16) > 100)
    assert cache.meta(names[1]) == {"spacing": [1.0, 0.5, 0.5]}


def test_changed_source_is_decoded_again(data, tmp_path):
    root, names, paths = data
    cache = _cache(tmp_path)
    cache.build(names, paths, progress=False)
    shutil.copy(paths[1], paths[0])  # video 0 now has other content
    os.utime(paths[0], ns=(1, 1))
    again = _cache(tmp_path)
    assert again.build(names, paths, progress=False) == (1, [])
    assert np.array_equal(again.get(names[0], paths[0])["frames"], _decoded(paths[1], 32))


def test_corrupt_entry_is_detected_not_trusted(data, tmp_path, caplog):
    root, names, paths = data
    cache = _cache(tmp_path)
    cache.build(names, paths, progress=False)
    f = cache.folder / cache.index[names[2]]["arrays"]["frames"]["file"]
    raw = bytearray(f.read_bytes())
    raw[-100:] = bytes(100)  # flip the last frame's bytes: same size, wrong checksum
    f.write_bytes(bytes(raw))
    v = _cache(tmp_path).get(names[2], paths[2])["frames"]
    assert np.array_equal(v, _decoded(paths[2], 32))
    assert "corrupt" in caplog.text
    (cache.folder / "index.json").write_text("{not json")  # an interrupted index write
    assert _cache(tmp_path).build(names, paths, progress=False)[0] == len(names)
    assert json.loads((cache.folder / "index.json").read_text())[names[0]]["meta"]["frames"] > 0


@pytest.mark.parametrize("cached", [True, False])
def test_undecodable_video_is_a_problem_not_a_crash(data, tmp_path, cached):
    root, names, paths = data
    open(paths[3], "wb").close()  # zero bytes
    arrays, problems = load_samples("echonet_dynamic", names, paths, CONFIG,
                                    lambda p: echonet_dynamic.preprocess(p, CONFIG),
                                    tmp_path / "c" if cached else None, progress=False)
    assert arrays[3] is None and len(problems) == 1 and names[3] in problems[0].problem
    assert all(a is not None for i, a in enumerate(arrays) if i != 3)


def test_cache_command(twin, tmp_path):
    proc = cli("data", "cache", "echonet_dynamic", str(twin), "--size", "32", "--cache-dir", str(tmp_path), check=True)
    assert "24 sample(s) preprocessed" in proc.stdout and "/s" in proc.stdout


def test_an_edited_companion_file_is_decoded_again(tmp_path):
    """A sample decoded from two files (an image and its mask) is rebuilt when either changes."""
    (tmp_path / "s").mkdir()
    image, mask = tmp_path / "s" / "a.npy", tmp_path / "s" / "a_mask.npy"
    np.save(image, np.arange(6.0))
    np.save(mask, np.zeros(6, dtype=np.uint8))
    calls = []

    def two(path):
        calls.append(path)
        return {"image": np.load(path), "mask": np.load(path.with_name(path.stem + "_mask.npy"))}, {}

    def companions(path):
        return [path.with_name(path.stem + "_mask.npy")]

    def cache():
        return ArrayCache(tmp_path / "c", "toy", {"v": 1}, two, companions)

    assert cache().build(["a"], [image], progress=False) == (1, [])
    assert cache().build(["a"], [image], progress=False) == (0, [])  # reused
    np.save(mask, np.ones(6, dtype=np.uint8))
    os.utime(mask, ns=(1, 1))
    assert cache().build(["a"], [image], progress=False) == (1, [])
    assert cache().get("a", image)["mask"].tolist() == [1] * 6
    assert len(calls) == 2
    # without companions the same entry is judged on the image alone (and now differs from it: rebuilt)
    plain = ArrayCache(tmp_path / "c", "toy", {"v": 1}, two)
    assert plain.build(["a"], [image], progress=False) == (1, [])


def test_acdc_names_its_ground_truth_as_the_companion():
    from cardiobench.data import get_format

    fmt = get_format("acdc")
    got = fmt.companions("/d/training/patient001/patient001_frame01.nii.gz")
    assert [str(p) for p in got] == ["/d/training/patient001/patient001_frame01_gt.nii.gz"]
