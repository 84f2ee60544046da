"""Format ct_rate: a tiny hand-made CT-RATE release; the index, _fixed precedence, HU and spacing from the
metadata CSV (never the header), reports, the patient-grouped VAL split and one clear verify line per problem."""
from __future__ import annotations

import csv
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from cardiobench.errors import CardiobenchError, DataError
from cardiobench.tasks.ctrate import format as ct_rate

SHAPE = (12, 10, 6)
HEADER_AFFINE = np.array([[-1.0, 0, 0, 30.0], [0, -1.0, 0, 20.0], [0, 0, 1.0, -50.0], [0, 0, 0, 1]])
TRAIN = ["train_1_a_1.nii.gz", "train_1_a_2.nii.gz", "train_2_a_1.nii.gz", "train_2_b_1.nii.gz"]
VALID = ["valid_12_a_1.nii.gz"]
ONLY_ORIGINAL = "valid_12_a_2.nii.gz"  # in valid/ but not valid_fixed/: the fixed folder wins, so it is not read
XY, Z = (0.7, 0.8), 2.5


def _stored(seed: int) -> np.ndarray:
    """int16 as DICOM stores it (HU + 1024): air, soft tissue and a little bone."""
    rng = np.random.default_rng(seed)
    v = np.full(SHAPE, 24, np.int16)  # -1000 HU
    v[3:9, 2:8, :] = 1064 + rng.integers(-20, 20, (6, 6, SHAPE[2]))  # ~40 HU
    v[5, 5, :] = 2024  # 1000 HU
    return v


def _write(path, data, slope_inter=(2.0, 5.0)):
    """A NIfTI whose header zooms (1 mm) and scl_slope/scl_inter are wrong on purpose: the CSV is the truth."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, HEADER_AFFINE)
    if slope_inter is not None:
        img.header.set_slope_inter(*slope_inter)
    nib.save(img, str(path))


def _volume_file(root, folder, name):
    split, pid, scan, _ = name[: -len(".nii.gz")].split("_")
    return root / folder / f"{split}_{pid}" / f"{split}_{pid}_{scan}" / name


def _csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _labels_row(name, seed):
    return [name, *[int(b) for b in np.random.default_rng(seed).integers(0, 2, len(ct_rate.LABELS))]]


def _build(root):
    for i, name in enumerate(TRAIN):
        _write(_volume_file(root, "train", name), _stored(i))
    _write(_volume_file(root, "valid_fixed", VALID[0]), _stored(10))
    # the original release of the same volume: float, another content, no scaling
    _write(_volume_file(root, "valid", VALID[0]), np.full(SHAPE, 500.0, np.float32), slope_inter=None)
    _write(_volume_file(root, "valid", ONLY_ORIGINAL), _stored(11))
    for i, name in enumerate(TRAIN + VALID):
        _write(root / "masks" / name, (_stored(i) > 1000).astype(np.uint8), slope_inter=None)
    meta = ["VolumeName", "Manufacturer", "XYSpacing", "ZSpacing", "RescaleSlope", "RescaleIntercept", "PatientAge"]
    for split, csv_split, names in (("train", "train", TRAIN), ("valid", "validation", VALID + [ONLY_ORIGINAL])):
        _csv(root / "metadata" / f"{csv_split}_metadata.csv", meta,
             [[n, "ACME", f"[{XY[0]}, {XY[1]}]", Z, 1, -1024, "061Y"] for n in names])
        _csv(root / "radiology_text_reports" / f"{csv_split}_reports.csv",
             ["VolumeName", "ClinicalInformation_EN", "Technique_EN", "Findings_EN", "Impressions_EN"],
             [[n, "Not given.", "Non-contrast chest CT.", "Heart size normal.\nNo effusion.", f"Impression {n}."]
              for n in names[: len(names) if split == "train" else 1]])
        _csv(root / "multi_abnormality_labels" / f"{split}_predicted_labels.csv", ["VolumeName", *ct_rate.LABELS],
             [_labels_row(n, k) for k, n in enumerate(names[: len(names) if split == "train" else 1])])
    return root


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("ctrate") / "dataset")


@pytest.fixture
def copy(release, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(release, root)
    return root


def test_labels_and_slugs():
    assert len(ct_rate.LABELS) == 18 and ct_rate.LABELS[0] == "Medical material"
    assert ct_rate.LABELS[-1] == "Interlobular septal thickening" and ct_rate.LABELS[9] == "Lung nodule"
    assert ct_rate.slug("Lung nodule") == "lung_nodule"
    assert ct_rate.slug("Coronary artery wall calcification") == "coronary_artery_wall_calcification"
    assert ct_rate.slug("A/B  (c)") == "a_b_c"


def test_index_columns_and_ids(release):
    samples, problems = ct_rate.index(release)
    assert problems == []
    assert list(samples.columns) == ct_rate.COLUMNS
    assert list(samples.sample_id) == TRAIN + VALID  # VolumeName keeps .nii.gz; ordered by split, pid, scan, rec
    r = samples.set_index("sample_id")
    assert r.loc["train_1_a_2.nii.gz", "patient_id"] == "train_1"
    assert r.loc["train_2_b_1.nii.gz", "scan_id"] == "train_2_b"
    assert r.loc["valid_12_a_1.nii.gz", "patient_id"] == "valid_12"
    assert dict(samples.groupby("split").size()) == {"TRAIN": 4, "TEST": 1}
    assert r.loc["train_1_a_1.nii.gz", "image"] == "train/train_1/train_1_a/train_1_a_1.nii.gz"
    assert r.loc["train_1_a_1.nii.gz", "mask"] == "masks/train_1_a_1.nii.gz"
    assert set(samples.mask_ids) == {"v2"} and samples.has_report.all()
    assert (samples[["spacing_x", "spacing_y", "spacing_z"]].to_numpy() == [*XY, Z]).all()
    assert (samples.rescale_slope == 1).all() and (samples.rescale_intercept == -1024).all()
    # labels by slug, exactly as the CSV has them
    expected = _labels_row("train_2_a_1.nii.gz", 2)[1:]
    assert r.loc["train_2_a_1.nii.gz", [ct_rate.slug(c) for c in ct_rate.LABELS]].tolist() == expected
    assert set(ct_rate.index(release, mask_ids="v1")[0].mask_ids) == {"v1"}
    with pytest.raises(CardiobenchError, match="mask_ids"):
        ct_rate.index(release, mask_ids="v3")


def test_fixed_folder_wins(release, copy):
    samples, _ = ct_rate.index(release)
    valid = samples[samples.split == "TEST"]
    assert list(valid.image) == ["valid_fixed/valid_12/valid_12_a/valid_12_a_1.nii.gz"]  # valid/ ignored entirely
    assert ct_rate.volume_path(release, VALID[0]).parent.parent.parent.name == "valid_fixed"
    assert ct_rate.split_folder(release, "train").name == "train"  # no train_fixed/: the original is read
    shutil.rmtree(copy / "valid_fixed")
    samples, _ = ct_rate.index(copy)
    assert list(samples[samples.split == "TEST"].image) == [
        "valid/valid_12/valid_12_a/valid_12_a_1.nii.gz", "valid/valid_12/valid_12_a/valid_12_a_2.nii.gz"]


def test_hu_and_spacing_from_the_csv_not_the_header(release):
    meta = ct_rate.read_metadata(release, "train").set_index("VolumeName", drop=False)
    row = meta.loc["train_2_b_1.nii.gz"]
    vol = ct_rate.read_volume(release, row)
    stored = _stored(3)
    assert vol.data.dtype == np.float32
    np.testing.assert_array_equal(vol.data, stored.astype(np.float32) - 1024)  # the header's 2x + 5 not applied
    assert vol.data.min() == -1000 and vol.data.max() == 1000
    assert vol.zooms == (*XY, Z)
    # the header's directions (x and y flipped) and origin, the CSV's voxel sizes
    np.testing.assert_allclose(vol.affine, np.array([[-0.7, 0, 0, 30], [0, -0.8, 0, 20], [0, 0, 2.5, -50],
                                                     [0, 0, 0, 1]]))
    # from the file and an index row: the same
    samples, _ = ct_rate.index(release)
    irow = samples.set_index("sample_id", drop=False).loc["train_2_b_1.nii.gz"]
    again = ct_rate.read_volume(irow["path"], irow)
    np.testing.assert_array_equal(again.data, vol.data)
    # the fixed valid volume, not the original one
    vrow = ct_rate.read_metadata(release, "valid").iloc[0]
    np.testing.assert_array_equal(ct_rate.read_volume(release, vrow).data, _stored(10).astype(np.float32) - 1024)
    bad = dict(row, XYSpacing="0.7")
    with pytest.raises(DataError, match="XYSpacing '0.7' is not"):
        ct_rate.read_volume(release, bad)


def test_reports_and_labels(release):
    reports = ct_rate.read_reports(release, "train")
    assert list(reports.VolumeName) == TRAIN
    assert (reports.ClinicalInformation_EN == "").all()  # "Not given."
    assert reports.Findings_EN.iloc[0] == "Heart size normal.\nNo effusion."
    assert reports.Technique_EN.iloc[0] == "Non-contrast chest CT."
    # a quoted newline makes a row two lines long: the line numbers are the file's lines
    assert list(reports.line) == [2, 4, 6, 8]
    assert list(ct_rate.read_reports(release, "validation").VolumeName) == VALID
    labels = ct_rate.read_labels(release, "train")
    assert list(labels.columns) == ["VolumeName", *ct_rate.LABELS, "line"]
    assert labels.iloc[1][ct_rate.LABELS].tolist() == _labels_row(TRAIN[1], 1)[1:]
    with pytest.raises(CardiobenchError, match="unknown CT-RATE split"):
        ct_rate.read_labels(release, "holdout")


def _many_patients() -> pd.DataFrame:
    rows = [dict(sample_id=f"train_{p}_{s}_{r}.nii.gz", patient_id=f"train_{p}", split="TRAIN")
            for p in range(1, 21) for s in "ab"[: 1 + p % 2] for r in (1, 2)]
    rows += [dict(sample_id=f"valid_{p}_a_1.nii.gz", patient_id=f"valid_{p}", split="TEST") for p in range(1, 4)]
    return pd.DataFrame(rows)


def test_split_train_val_is_patient_grouped_and_deterministic(release):
    samples = _many_patients()
    split = ct_rate.split_train_val(samples, 0.25, seed=7)
    assert split.index.equals(samples.index)
    per_patient = split.groupby(samples.patient_id).nunique()
    assert (per_patient == 1).all()  # every scan and reconstruction of a patient together
    val = set(samples.patient_id[split == "VAL"])
    assert len(val) == 5 and all(p.startswith("train_") for p in val)
    assert (split[samples.split == "TEST"] == "TEST").all()
    assert ct_rate.split_train_val(samples, 0.25, seed=7).equals(split)
    shuffled = samples.sample(frac=1.0, random_state=3)
    assert ct_rate.split_train_val(shuffled, 0.25, seed=7).loc[samples.index].equals(split)  # row order irrelevant
    others = [set(samples.patient_id[ct_rate.split_train_val(samples, 0.25, seed=s) == "VAL"]) for s in range(1, 6)]
    assert any(o != val for o in others)
    assert (ct_rate.split_train_val(samples, 0.0, seed=7) == samples.split).all()
    # the tiny release: one of its two train patients, whole
    index, _ = ct_rate.index(release)
    s = ct_rate.split_train_val(index, 0.3, seed=0)
    assert index.patient_id[s == "VAL"].nunique() == 1 and s.groupby(index.patient_id).nunique().max() == 1
    with pytest.raises(CardiobenchError, match="val_fraction"):
        ct_rate.split_train_val(samples, 1.0, seed=0)


def test_verify_of_a_clean_release_passes(release):
    assert ct_rate.verify(release, progress=False) == []


def _edit_csv(path, edit):
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(df).to_csv(path, index=False)


def _drop_column(root):
    _edit_csv(root / ct_rate.LABEL_FILES["train"], lambda d: d.drop(columns=["Emphysema"]))
    return ct_rate.LABEL_FILES["train"], ["lacks label column", "Emphysema"]


def _extra_column(root):
    _edit_csv(root / ct_rate.LABEL_FILES["train"], lambda d: d.assign(Fever="0"))
    return ct_rate.LABEL_FILES["train"], ["Fever", "not CT-RATE labels"]


def _bad_value(root):
    def edit(d):
        d.loc[2, "Lung nodule"] = "2"
        return d
    _edit_csv(root / ct_rate.LABEL_FILES["train"], edit)
    return ct_rate.LABEL_FILES["train"], ["line 4 (train_2_a_1.nii.gz)", "Lung nodule '2'", "not 0 or 1"]


def _orphan_report(root):
    with open(root / ct_rate.REPORTS["train"], "a", newline="") as fh:
        csv.writer(fh).writerow(["train_9_a_1.nii.gz", "Not given.", "x", "y", "z"])
    return ct_rate.REPORTS["train"], ["line 10 (train_9_a_1.nii.gz)", "report row", "does not exist"]


def _orphan_label(root):
    with open(root / ct_rate.LABEL_FILES["valid"], "a", newline="") as fh:
        csv.writer(fh).writerow(_labels_row("valid_13_a_1.nii.gz", 0))
    return ct_rate.LABEL_FILES["valid"], ["line 3 (valid_13_a_1.nii.gz)", "label row", "valid_fixed/"]


def _no_metadata(root):
    _edit_csv(root / ct_rate.METADATA["train"], lambda d: d[d.VolumeName != "train_1_a_2.nii.gz"])
    return "train/train_1/train_1_a/train_1_a_2.nii.gz", ["no row in metadata/train_metadata.csv"]


def _bad_metadata(root):
    def edit(d):
        d.loc[1, "ZSpacing"] = "nan"
        return d
    _edit_csv(root / ct_rate.METADATA["train"], edit)
    return ct_rate.METADATA["train"], ["line 3 (train_1_a_2.nii.gz)", "ZSpacing 'nan'", "volume skipped"]


def _mask_shape(root):
    _write(root / "masks" / "train_2_b_1.nii.gz", np.zeros((12, 10, 5), np.uint8), slope_inter=None)
    return "masks/train_2_b_1.nii.gz", ["shape (12, 10, 5) differs", "(12, 10, 6)"]


def _truncated(root):
    path = _volume_file(root, "train", "train_1_a_1.nii.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return "train/train_1/train_1_a/train_1_a_1.nii.gz", ["truncated"]


def _no_csv(root):
    (root / ct_rate.METADATA["valid"]).unlink()
    return ct_rate.METADATA["valid"], ["missing", "no valid volume can be read"]


def _double_shift(root):
    """Voxels that already hold HU shifted by the CSV intercept again: no soft tissue left."""
    _write(_volume_file(root, "train", "train_2_a_1.nii.gz"), _stored(2) - 1024)
    return "train/train_2/train_2_a/train_2_a_1.nii.gz", ["no soft tissue", "intercept -1024"]


def _misplaced(root):
    src = _volume_file(root, "valid_fixed", VALID[0])
    shutil.copy(src, src.parent / "valid_13_a_1.nii.gz")
    return "valid_fixed/valid_12/valid_12_a/valid_13_a_1.nii.gz", ["misplaced", "valid_fixed/valid_13/valid_13_a/"]


BREAKS = [_drop_column, _extra_column, _bad_value, _orphan_report, _orphan_label, _no_metadata, _bad_metadata,
          _mask_shape, _truncated, _no_csv, _double_shift, _misplaced]


@pytest.mark.parametrize("corrupt", BREAKS, ids=[b.__name__.strip("_") for b in BREAKS])
def test_verify_names_each_problem_once(copy, corrupt):
    file, needles = corrupt(copy)
    problems = ct_rate.verify(copy, progress=False)
    lines = [str(p) for p in problems]
    assert len(problems) == 1, lines
    p = problems[0]
    assert p.file == file, lines
    for needle in needles:
        assert needle in str(p), (needle, lines)
    assert "Traceback" not in str(p)


def test_a_problem_volume_leaves_the_index(copy):
    _no_metadata(copy)
    samples, problems = ct_rate.index(copy)
    assert "train_1_a_2.nii.gz" not in set(samples.sample_id) and len(samples) == 4 and len(problems) == 1
    _bad_value(copy)
    samples, _ = ct_rate.index(copy)
    row = samples.set_index("sample_id").loc["train_2_a_1.nii.gz"]
    assert np.isnan(row["lung_nodule"]) and np.isnan(row["medical_material"])  # that row's labels are unknown


def test_missing_root_and_layout_are_one_clear_problem(tmp_path, release):
    problems = ct_rate.verify(tmp_path / "nope", progress=False)
    assert len(problems) == 1 and "data folder not found" in problems[0].problem
    (tmp_path / "hf" / "dataset").mkdir(parents=True)
    problems = ct_rate.verify(tmp_path / "hf", progress=False)
    assert len(problems) == 1 and "no CT-RATE volumes" in problems[0].problem and "dataset/" in problems[0].problem


def test_missing_masks_are_reported_not_crashed(copy):
    (copy / "masks" / "train_1_a_2.nii.gz").unlink()
    samples, _ = ct_rate.index(copy)
    assert pd.isna(samples.set_index("sample_id").loc["train_1_a_2.nii.gz", "mask"])
    problems = ct_rate.verify(copy, progress=False)
    assert len(problems) == 1 and problems[0].severity == "warning"
    assert problems[0].file == "masks/train_1_a_2.nii.gz"
    assert "TotalSegmentator beforehand" in problems[0].problem
    with pytest.raises(DataError, match="missing: organ masks are an input.*TotalSegmentator beforehand"):
        ct_rate.read_mask(copy, "train_1_a_2.nii.gz")
    assert ct_rate.read_mask(copy, "train_2_b_1.nii.gz", shape=SHAPE).dtype == np.uint8
    shutil.rmtree(copy / "masks")
    problems = ct_rate.verify(copy, progress=False, decode=False)
    assert [(p.file, p.severity) for p in problems] == [("masks/", "warning")]
