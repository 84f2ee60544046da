"""CT-RATE as a registered format: fVLM's preprocessing into the cache, the fully-inside-crop record,
the cache companions (metadata CSV, organ mask), and `data synth` / `data verify` from the CLI."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from cardiobench.data import get_format
from cardiobench.data.cache import ArrayCache
from cardiobench.data.nifti import FileProblem
from cardiobench.tasks.ctrate import format as ct_rate
from cardiobench.tasks.ctrate.preprocess import classes_inside, group_inside

from .conftest import cli

SMALL = ct_rate.preprocess_config({"spacing": [6.0, 6.0, 8.0], "shape": [64, 48, 40]})


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    out = tmp_path_factory.mktemp("ctrate_pre") / "twin"
    proc = cli("data", "synth", "ct_rate", "--out", str(out), "--n", "6", "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    return out


def test_classes_inside_the_crop():
    full = np.zeros((10, 10, 10), np.uint8)
    full[4:6, 4:6, 4:6] = 1      # well inside
    full[1:3, 4:6, 4:6] = 2      # cut by the crop
    full[2, 6:8, 6:8] = 4        # kept whole, but on a face of the crop
    crop = full[2:8, 2:8, 2:8]   # what a centre crop of 6^3 keeps
    got = classes_inside(full, crop)
    assert got.shape == (256,) and got.dtype == np.uint8
    assert got[1] == 1 and got[2] == 3 and got[4] == 3
    assert got[5] == 0 and got[0] == 0  # absent; background
    # a scan smaller than the crop (padded): an organ on the scan's own face is cut by its field of view
    small = np.zeros((6, 6, 6), np.uint8)
    small[0:2, 2:4, 2:4] = 3
    small[2:4, 2:4, 2:4] = 1
    got = classes_inside(small, np.pad(small, 2))
    assert got[3] == 2 and got[1] == 1
    # groups: the released code's rule accepts a field-of-view cut, the strict one does not
    assert group_inside(got, [1, 7]) and group_inside(got, [1, 3]) and not group_inside(got, [1, 3], "strict")
    assert not group_inside(got, [7, 8])  # absent
    cut = classes_inside(full, crop)
    assert not group_inside(cut, [1, 2]) and group_inside(cut, [1])


def test_registered_and_the_cli_writes_and_verifies_a_clean_twin(twin):
    fmt = get_format("ct_rate")
    assert fmt.twin_version == ct_rate.TWIN_VERSION and "metadata/train_metadata.csv" in fmt.index_files
    proc = cli("data", "verify", "ct_rate", str(twin))
    assert proc.returncode == 0 and "0 error(s)" in proc.stdout + proc.stderr, proc.stderr
    # a twin this small has no valid/ volume: the only warning says a run would lack its TEST split
    assert [line for line in proc.stdout.splitlines() if line.startswith("WARNING")] == [
        "WARNING: valid/: no usable TEST volumes (usable by split: 6 TRAIN); a run needs TRAIN, TEST"]


def test_preprocessed_volume_mask_and_inside_record(twin):
    samples, problems = ct_rate.index(twin)
    assert problems == []
    row = samples.iloc[0]
    out, meta = ct_rate.preprocess(row.path, SMALL)
    assert out["image"].shape == out["mask"].shape == (64, 48, 40) and out["image"].dtype == np.float16
    assert 0.0 <= float(out["image"].min()) and float(out["image"].max()) <= 1.0
    source_ids = set(np.unique(ct_rate.read_mask(twin, row.sample_id)).tolist())
    assert set(np.unique(out["mask"]).tolist()) <= source_ids
    inside = np.flatnonzero(out["class_inside"] == 1)
    assert len(inside) > 5 and set(inside.tolist()) <= set(np.unique(out["mask"]).tolist()) - {0}
    assert meta["spacing"] == pytest.approx([float(row.spacing_x), float(row.spacing_y), float(row.spacing_z)])


def test_masks_can_be_left_out(twin):
    samples, _ = ct_rate.index(twin)
    out, _ = ct_rate.preprocess(samples.path[0], {**SMALL, "masks": False})
    assert set(out) == {"image"}


def test_editing_a_mask_or_the_metadata_refreshes_the_cached_volume(twin, tmp_path):
    root = tmp_path / "twin"
    shutil.copytree(twin, root)
    samples, _ = ct_rate.index(root)
    names, paths = list(samples.sample_id), list(samples.path)

    def cache():
        return ArrayCache(tmp_path / "c", "ct_rate", SMALL, lambda p: ct_rate.preprocess(p, SMALL), ct_rate.companions)

    assert cache().build(names, paths, progress=False) == (len(names), [])
    assert cache().build(names, paths, progress=False) == (0, [])
    mask = ct_rate.mask_path(root, names[0])
    shutil.copy(ct_rate.mask_path(root, names[0]), tmp_path / "m.nii.gz")
    os.utime(mask, ns=(1, 1))
    assert cache().build(names, paths, progress=False) == (1, [])
    csv = root / ct_rate.METADATA["train"]
    meta = pd.read_csv(csv)
    meta.to_csv(csv, index=False)  # rewritten: every train volume is calibrated by it
    n_train = int((samples.split == "TRAIN").sum())
    assert cache().build(names, paths, progress=False) == (n_train, [])


def test_a_volume_without_metadata_is_a_clear_problem(twin, tmp_path):
    root = tmp_path / "twin"
    shutil.copytree(twin, root)
    samples, _ = ct_rate.index(root)
    row = samples.iloc[0]
    csv = root / ct_rate.METADATA["train" if row.split != "TEST" else "valid"]
    meta = pd.read_csv(csv)
    meta[meta.VolumeName != row.sample_id].to_csv(csv, index=False)
    with pytest.raises(FileProblem, match="no row in"):
        ct_rate.preprocess(row.path, SMALL)
