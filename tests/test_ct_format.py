"""Format ct_echo: labels.csv + NIfTI chest CTs; `data verify` names each problem; Merlin preprocessing
through the cache equals MONAI's own pipeline from the file."""
from __future__ import annotations

import gzip
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from cardiobench.tasks.chest_ct import format as ct_echo

from .conftest import cli

SMALL = {"spacing": [3.0, 3.0, 6.0], "hu_window": [-1000.0, 1000.0], "shape": [64, 64, 24], "dtype": "float16"}


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    return ct_echo.synthesize(tmp_path_factory.mktemp("ct") / "twin", n=8, seed=3, workers=1, progress=False)


def test_twin_layout_and_labels(twin):
    labels = pd.read_csv(twin / "labels.csv")
    assert list(labels.columns[:5]) == ct_echo.REQUIRED
    assert set(labels.split) <= {"train", "val", "test"} and labels.patient_id.is_unique
    kinds = set()
    for r in labels.itertuples():
        img = nib.load(str(twin / r.image))
        kinds.add((img.get_data_dtype().name, r.image.endswith(".gz")))
        assert img.ndim == 3 and 0 <= r.lvef <= 100 and r.aortic_stenosis in (0, 1)
        assert ct_echo.hu_problem(img.get_fdata(dtype=np.float32)) is None
    assert ("uint16", True) in kinds and ("int16", False) in kinds and ("float32", True) in kinds
    samples, problems = ct_echo.index(twin)
    assert problems == [] and len(samples) == len(labels)


def test_uint16_with_intercept_reads_as_hu(twin):
    labels = pd.read_csv(twin / "labels.csv")
    row = next(r for r in labels.itertuples() if nib.load(str(twin / r.image)).get_data_dtype() == np.uint16)
    img = nib.load(str(twin / row.image))
    raw = np.asanyarray(img.dataobj.get_unscaled())
    hu = ct_echo.read_volume(twin / row.image).data
    assert img.dataobj.inter == -1024 and np.allclose(hu, raw.astype(np.float32) - 1024)
    assert hu.min() < -900  # air


def _break(root, problems):
    labels = pd.read_csv(root / "labels.csv", dtype=str)
    images = labels.image.tolist()
    # 1 missing image, 2 truncated, 3 a 2D volume, 4 NaN voxels, 5 implausible HU (no intercept)
    (root / images[0]).unlink()
    data = (root / images[1]).read_bytes()
    (root / images[1]).write_bytes(data[: len(data) // 3])
    aff = np.diag([0.8, 0.8, 2.0, 1.0])
    nib.save(nib.Nifti1Image(np.zeros((32, 32), np.int16), aff), str(root / images[2]))
    vol = np.full((32, 32, 8), -800, np.float32)
    vol[4, 4, 4] = np.nan
    nib.save(nib.Nifti1Image(vol, aff), str(root / "images" / "nan.nii.gz"))
    labels.loc[3, "image"] = "images/nan.nii.gz"
    raw = np.full((32, 32, 8), 1100, np.uint16)  # HU + 1024 without scl_inter: no air anywhere
    nib.save(nib.Nifti1Image(raw, aff), str(root / "images" / "raw.nii.gz"))
    labels.loc[4, "image"] = "images/raw.nii.gz"
    # rows: 6 lvef out of range, 7 AS not 0/1, plus an unknown split and a patient in two splits
    labels.loc[5, "lvef"] = "140"
    labels.loc[6, "aortic_stenosis"] = "2"
    extra = labels.iloc[[7, 7]].copy()
    extra["split"] = ["holdout", "train" if labels.loc[7, "split"] != "train" else "test"]
    extra.iloc[0, extra.columns.get_loc("patient_id")] = "CT9999"
    labels = pd.concat([labels, extra], ignore_index=True)
    labels.to_csv(root / "labels.csv", index=False)
    return labels


def test_verify_names_each_problem(twin, tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(twin, root)
    labels = _break(root, [])
    proc = cli("data", "verify", "ct_echo", str(root))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    out = proc.stdout.splitlines()
    im = labels.image.tolist()

    def one(*needles):
        hits = [line for line in out if all(n in line for n in needles)]
        assert len(hits) == 1, (needles, out)

    one(im[0], "missing", "line 2")
    one(im[1], "truncated")
    one(im[2], "expected a 3D volume")
    one("images/nan.nii.gz", "NaN")
    one("images/raw.nii.gz", "HU", "scl_inter")
    one("labels.csv", "line 7", "lvef 140 outside 0-100")
    one("labels.csv", "line 8", "aortic_stenosis '2'")
    one("labels.csv", "line 10", "split 'holdout'")
    one("labels.csv", labels.patient_id[7], "several splits")
    assert len(out) == 9, out


def test_verify_of_a_clean_twin_passes(twin):
    proc = cli("data", "verify", "ct_echo", str(twin))
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_cached_volume_equals_monai_pipeline(twin, tmp_path):
    """Our preprocessing (integrity-checked read + Merlin's transforms) stored in the cache equals MONAI's
    own LoadImaged pipeline from the file, to float16 precision, for every orientation and dtype."""
    from monai.transforms import (CenterSpatialCropd, Compose, EnsureChannelFirstd, LoadImaged, Orientationd,
                                  ScaleIntensityRanged, Spacingd, SpatialPadd)

    from cardiobench.data.cache import ArrayCache

    cfg = ct_echo.preprocess_config(SMALL)
    monai = Compose([LoadImaged(keys="image", reader="NibabelReader"), EnsureChannelFirstd(keys="image"),
                     Orientationd(keys="image", axcodes="RAS"),
                     Spacingd(keys="image", pixdim=SMALL["spacing"], mode="bilinear"),
                     ScaleIntensityRanged(keys="image", a_min=-1000, a_max=1000, b_min=0.0, b_max=1.0, clip=True),
                     SpatialPadd(keys="image", spatial_size=SMALL["shape"]),
                     CenterSpatialCropd(keys="image", roi_size=SMALL["shape"])])
    samples, _ = ct_echo.index(twin)
    cache = ArrayCache(tmp_path / "cache", "ct_echo", cfg, lambda p: ct_echo.preprocess(p, cfg))
    cache.build(list(samples.sample_id), list(samples.path), workers=1, progress=False)
    for s in samples.itertuples():
        ours = np.asarray(cache.get(s.sample_id, s.path)["image"])
        ref = np.asarray(monai({"image": s.path})["image"])[0]
        assert ours.dtype == np.float16 and ours.shape == tuple(SMALL["shape"])
        assert np.abs(ours.astype(np.float32) - ref).max() <= 1e-3, s.sample_id  # float16 step near 1 is 4.9e-4


def test_a_changed_source_is_preprocessed_again(twin, tmp_path):
    from cardiobench.data.cache import ArrayCache

    root = tmp_path / "copy"
    shutil.copytree(twin, root)
    cfg = ct_echo.preprocess_config(SMALL)
    samples, _ = ct_echo.index(root)
    s = samples.iloc[0]
    cache = ArrayCache(tmp_path / "cache", "ct_echo", cfg, lambda p: ct_echo.preprocess(p, cfg))
    before = np.array(cache.get(s.sample_id, s.path)["image"])
    img = nib.load(s.path)
    hu = img.get_fdata(dtype=np.float32) + 300.0  # a brighter scan at the same path
    out = nib.Nifti1Image(hu, img.affine)
    data = out.to_bytes()
    with open(s.path, "wb") as fh:
        fh.write(gzip.compress(data) if s.path.endswith(".gz") else data)
    after = np.array(ArrayCache(tmp_path / "cache", "ct_echo", cfg, lambda p: ct_echo.preprocess(p, cfg))
                     .get(s.sample_id, s.path)["image"])
    assert after.mean() > before.mean() + 0.05
