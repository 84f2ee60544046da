"""Chest-CT cache (issue 14): one training volume from the decode-once cache vs reading the .nii.gz and
running MONAI's Merlin pipeline per item, as the seed project's loader did (2 h per epoch).

Both sides are timed here on the same full-chest twin volumes at the paper's preprocessing
(RAS, 1.5 x 1.5 x 3 mm, HU window, 224 x 224 x 160): the reference is MONAI's dictionary pipeline
from the file path (LoadImaged ... CenterSpatialCropd); ours is the dataset item (the cached float16
array memory-mapped, its CRC checked, converted to a float32 tensor). The build throughput is
recorded too.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from conftest import best_time

from cardiobench.data.cache import ArrayCache
from cardiobench.tasks.chest_ct import format as ct_echo
from cardiobench.tasks.chest_ct.volumes import VolumeDataset

PAPER = ct_echo.preprocess_config(ct_echo.PAPER_IMAGE)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    return ct_echo.synthesize(tmp_path_factory.mktemp("ctb") / "twin", n=3, seed=1, workers=1, progress=False,
                              fov="chest")


def _monai_pipeline():
    from monai.transforms import (CenterSpatialCropd, Compose, EnsureChannelFirstd, LoadImaged, Orientationd,
                                  ScaleIntensityRanged, Spacingd, SpatialPadd)

    return Compose([LoadImaged(keys="image", reader="NibabelReader"), EnsureChannelFirstd(keys="image"),
                    Orientationd(keys="image", axcodes="RAS"),
                    Spacingd(keys="image", pixdim=PAPER["spacing"], mode="bilinear"),
                    ScaleIntensityRanged(keys="image", a_min=-1000, a_max=1000, b_min=0.0, b_max=1.0, clip=True),
                    SpatialPadd(keys="image", spatial_size=PAPER["shape"]),
                    CenterSpatialCropd(keys="image", roi_size=PAPER["shape"])])


def test_cached_volume_vs_nifti_plus_monai(benchmark, repeats, twin, tmp_path):
    samples, problems = ct_echo.index(twin)
    assert not problems
    cache = ArrayCache(tmp_path / "cache", "ct_echo", PAPER, lambda p: ct_echo.preprocess(p, PAPER))
    t0 = time.perf_counter()
    built, _ = cache.build(list(samples.sample_id), list(samples.path), workers=1, progress=False)
    build_s = time.perf_counter() - t0
    arrays = [cache.get(s, p)["image"] for s, p in zip(samples.sample_id, samples.path)]
    ds = VolumeDataset(arrays, {"lvef": samples.lvef.to_numpy(float)})
    pipeline = _monai_pipeline()
    paths = list(samples.path)
    k = {"i": 0}

    def reference():
        k["i"] = (k["i"] + 1) % len(paths)
        return pipeline({"image": paths[k["i"]]})["image"]

    def ours():
        k["i"] = (k["i"] + 1) % len(paths)
        s = samples.iloc[k["i"]]
        item = cache.get(s.sample_id, s.path)["image"]  # the CRC check included
        return torch.from_numpy(np.asarray(item, dtype=np.float32)).permute(2, 0, 1)[None]

    ref = reference()  # warm-up; and the cached array equals the pipeline's output
    got = np.asarray(cache.get(samples.sample_id.iloc[k["i"]], paths[k["i"]])["image"], dtype=np.float32)
    assert np.abs(got - np.asarray(ref)[0]).max() <= 1e-3
    x, y, z = PAPER["shape"]
    assert tuple(ds[0]["x"].shape) == (1, z, x, y)  # depth-first, as the network sees it
    t_ref = best_time(reference, repeat=repeats(3))
    t_ours = best_time(ours, repeat=repeats(10) + 1)
    benchmark.extra_info.update(reference_s=t_ref, ours_s=t_ours, speedup=t_ref / t_ours,
                                build_volumes_per_s=built / build_s)
    benchmark.pedantic(ours, rounds=repeats(5), iterations=1)
    shape = "x".join(map(str, PAPER["shape"]))
    print(f"\nchest CT -> {shape} float16: cache item {t_ours * 1e3:.1f} ms, .nii.gz + MONAI pipeline "
          f"{t_ref * 1e3:.0f} ms per volume, speedup {t_ref / t_ours:.0f}x; cache build {built / build_s:.2f} volumes/s")
    assert t_ref / t_ours >= 20
