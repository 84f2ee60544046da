"""The shared data checks behind `data verify`, `data cache` and a run: text encodings of index files,
a NIfTI affine's direction matrix, label maps stored as floats, chest-CT geometry and empty splits."""
from __future__ import annotations

import re

import numpy as np
import pytest

from cardiobench.data import nifti, textfile
from cardiobench.data.problems import require_splits, split_problems
from cardiobench.errors import DataError
from cardiobench.tasks.chest_ct.format import geometry_problems

TEXT = "FileName,EF\n0XAB,55.5\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-32"])
def test_text_with_or_without_a_byte_order_mark_is_read(encoding):
    assert textfile.decode(TEXT.encode(encoding), "FileList.csv") == TEXT


@pytest.mark.parametrize("encoding, said", [("utf-16-le", "UTF-16 (little-endian)"), ("utf-16-be", "UTF-16 (big-endian)"),
                                            ("latin-1", "not UTF-8")])
def test_undecodable_text_is_refused_saying_its_encoding(encoding, said):
    data = ("é" + TEXT).encode(encoding)
    with pytest.raises(DataError, match=rf"^FileList.csv: .*{re.escape(said)}"):
        textfile.decode(data, "FileList.csv")


def test_duplicated_columns():
    assert textfile.duplicated(["a", "b", "a", "c", "b", "a"]) == ["a", "b"]
    assert textfile.duplicated(["a", "b"]) == []


def _affine(rot) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = rot
    return a


def test_direction_matrix_checks():
    rotation = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]) @ np.diag([0.7, 0.7, 2.5])
    assert nifti.direction_problem(_affine(rotation)) is None
    zero = rotation.copy()
    zero[:, 1] = 0
    assert nifti.direction_problem(_affine(zero)) == ("error", nifti.direction_problem(_affine(zero))[1])
    assert "column 1 is zero" in nifti.direction_problem(_affine(zero))[1]
    singular = rotation.copy()
    singular[:, 2] = singular[:, 0]
    assert nifti.direction_problem(_affine(singular))[0] == "error"
    nan = _affine(rotation)
    nan[1, 3] = np.nan
    assert "non-finite" in nifti.direction_problem(nan)[1]
    tilt = np.eye(3)
    tilt[1, 2] = np.tan(np.radians(20))  # a gantry tilt: sheared, still a volume
    severity, why = nifti.direction_problem(_affine(tilt))
    assert severity == "warning" and "20.0 degrees" in why


def test_float_labels_convert_exactly_and_fractions_are_named():
    data = np.array([[[0.0, 1.0], [2.0, 3.0]]], dtype=np.float32)
    out = nifti.as_labels(data, "gt.nii.gz", 3, "ACDC labels")
    assert out.dtype == np.uint8 and out.tolist() == [[[0, 1], [2, 3]]]
    with pytest.raises(DataError, match=r"gt.nii.gz: non-integral label value\(s\) 0.5, 2.5 \(e.g. 0.5\)"):
        nifti.as_labels(data + np.float32(0.5) * (data % 2 == 0), "gt.nii.gz", 3, "ACDC labels")
    with pytest.raises(DataError, match=r"label value\(s\) 300 outside 0-255"):
        nifti.as_labels(np.array([0, 300], dtype=np.int16), "mask.nii.gz", 255, "class ids")


def test_ct_geometry():
    names = ("x", "y", "z")
    assert geometry_problems((0.7, 0.7, 2.5), (512, 512, 120), names) == []
    assert geometry_problems((0.7, 0.7, 50.0), None, names)[0][0] == "error"
    assert geometry_problems((0.001, 0.7, 2.5), None, names)[0] == ("error", "x: voxel spacing 0.001 mm is outside "
                                                                               "0.05-20 mm, not a CT voxel size")
    assert [s for s, _ in geometry_problems((0.7, 0.7, 12.0), (512, 512, 40), names)] == ["warning"]
    assert geometry_problems((5.0, 5.0, 5.0), (512, 512, 10), names)[0][0] == "error"  # 2.56 m across


def test_empty_split_names_the_split_and_the_index_file(tmp_path):
    sources = {k: "FileList.csv (column Split)" for k in ("TRAIN", "VAL", "TEST")}
    found = split_problems(["TRAIN", "TRAIN", "VAL"], sources, "videos")
    assert [str(p) for p in found] == ["WARNING: FileList.csv (column Split): no usable TEST videos (usable by split: "
                                       "2 TRAIN, 1 VAL); a run needs TRAIN, VAL, TEST"]
    with pytest.raises(DataError, match=r"FileList.csv \(column Split\): no usable VAL or TEST videos"):
        require_splits(["TRAIN"], sources, "videos", tmp_path)
    assert require_splits(["TEST", "TRAIN", "VAL"], sources, "videos", tmp_path)["TEST"].tolist() == [0]
