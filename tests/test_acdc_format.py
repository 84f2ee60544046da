"""The ACDC format: index of the real layout, the phantom twin, and `data verify` on broken copies."""
from __future__ import annotations

import filecmp
import gzip
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from cardiobench.data import get_format
from cardiobench.errors import DataError
from cardiobench.tasks.acdc import format as A

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def twin10(tmp_path_factory) -> Path:
    """Ten patients, two per group: 7 under training/, 3 under testing/."""
    return A.synthesize(tmp_path_factory.mktemp("acdc") / "twin10", n=10, seed=0, workers=2, progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """Two patients (patient001 in training/, patient002 in testing/): the copies verify breaks."""
    return A.synthesize(tmp_path_factory.mktemp("acdc") / "tiny", n=2, seed=5, workers=2, progress=False)


def _info(path: Path) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in path.read_text().splitlines())


# ----------------------------------------------------------------------------- index and splits


def test_registered_and_default_twin_size():
    fmt = get_format("acdc")
    assert fmt is A.FORMAT and fmt.twin_version >= 1 and fmt.index_files == ()
    assert fmt.default_twin_n == 150 and "Bernard et al., IEEE TMI 2018" in fmt.description


def test_index_of_twin(twin10):
    samples, problems = A.index(twin10)
    assert problems == []
    assert list(samples.columns) == A.COLUMNS
    assert len(samples) == 20 and samples.sample_id.is_unique
    assert (samples.groupby("patient_id").phase.apply(sorted) == pd.Series([["ED", "ES"]] * 10).values).all()
    assert (samples.subset == "training").sum() == 14 and set(samples[samples.subset == "training"].split) == {"TRAIN"}
    assert set(samples[samples.subset == "testing"].split) == {"TEST"}
    assert sorted(samples[samples.subset == "testing"].patient_id.unique()) == ["patient008", "patient009", "patient010"]
    assert samples.group.value_counts().to_dict() == {g: 4 for g in ("DCM", "HCM", "MINF", "NOR", "RV")}
    for row in samples.itertuples():
        info = _info(Path(row.path).parent / "Info.cfg")
        assert row.frame == int(info[row.phase]) and row.nb_frame == int(info["NbFrame"])
        assert row.group == info["Group"] and row.height == float(info["Height"])
        assert Path(row.path).name == f"{row.patient_id}_frame{row.frame:02d}.nii.gz"
        assert Path(row.gt_path).name == f"{row.patient_id}_frame{row.frame:02d}_gt.nii.gz"
        assert Path(row.path).is_file() and Path(row.gt_path).is_file()
    es = samples[samples.phase == "ES"]
    assert (es.frame > 1).all() and ((es.frame - 1) / es.nb_frame).between(0.3, 0.5).all()
    # The citation files are where the release has them, and ignored.
    assert (twin10 / "MANDATORY_CITATION.md").is_file() and (twin10 / "training" / "MANDATORY_CITATION.md").is_file()


def test_database_nesting_and_stray_files(tiny, tmp_path):
    nested = tmp_path / "ACDC"
    shutil.copytree(tiny, nested / "database")
    (nested / "MANDATORY_CITATION.md").write_text("cite\n")
    (nested / "database" / "training" / "patient001" / "MANDATORY_CITATION.md").write_text("cite\n")
    samples, problems = A.index(nested)
    assert problems == [] and list(samples.sample_id) == ["patient001_ED", "patient001_ES", "patient002_ED",
                                                          "patient002_ES"]
    (nested / "database" / "training" / "patient001" / "Info.cfg").unlink()
    samples, problems = A.index(nested)
    assert [p.file for p in problems] == ["database/training/patient001/Info.cfg"]
    assert list(samples.patient_id.unique()) == ["patient002"]
    with pytest.raises(DataError, match="no training/ or testing/"):
        A.index(tmp_path)


def test_split_training_on_twin(twin10):
    samples, _ = A.index(twin10)
    split = A.split_training(samples, seed=0)
    assert split.index.equals(samples.index)
    assert (split[samples.subset == "testing"] == "TEST").all()
    assert set(split[samples.subset == "training"]) == {"TRAIN", "VAL"}
    assert (samples.assign(s=split).groupby("patient_id").s.nunique() == 1).all()  # ED and ES together
    assert split.equals(A.split_training(samples, seed=0))


def test_split_training_is_stratified_and_seeded():
    rows = [dict(sample_id=f"patient{p:03d}_{ph}", patient_id=f"patient{p:03d}", split="TRAIN" if p <= 100 else "TEST",
                 group=("DCM", "HCM", "MINF", "NOR", "RV")[(p - 1) // 20 % 5], phase=ph)
            for p in range(1, 151) for ph in ("ED", "ES")]
    samples = pd.DataFrame(rows).sample(frac=1, random_state=0)  # any row order
    a, b, c = (A.split_training(samples, seed=s) for s in (1, 1, 2))
    assert a.equals(b) and not a.equals(c)
    per_patient = samples.assign(s=a).groupby("patient_id").s
    assert (per_patient.nunique() == 1).all()
    val = samples.assign(s=a)[lambda d: (d.s == "VAL") & (d.phase == "ED")]
    assert val.group.value_counts().to_dict() == {g: 4 for g in ("DCM", "HCM", "MINF", "NOR", "RV")}
    assert (a[samples.split == "TEST"] == "TEST").all()


def test_normalize_id():
    for text in ("patient1_ed", "Patient001_ED.nii.gz", "patient001_ED", " PATIENT0001-ed "):
        assert A.normalize_id(text) == "patient001_ED"
    assert A.normalize_id("patient120_es") == "patient120_ES"


# ----------------------------------------------------------------------------- the phantom's labels


def _measure(twin: Path) -> pd.DataFrame:
    samples, _ = A.index(twin)
    rows = []
    for pid, g in samples.groupby("patient_id"):
        vol = {}
        for row in g.itertuples():
            case = A.read_case(row.path, row.gt_path)
            ml = float(np.prod(case.spacing)) / 1000
            lab = case.label
            vol[row.phase] = {k: (lab == v).sum() * ml for k, v in (("RV", 1), ("MYO", 2), ("LV", 3))}
            if row.phase == "ED":  # thickest wall: per slice, epicardial minus endocardial equivalent radius
                a = [(lab[..., z] == 3).sum() * case.spacing[0] * case.spacing[1] for z in range(lab.shape[2])]
                m = [(lab[..., z] >= 2).sum() * case.spacing[0] * case.spacing[1] for z in range(lab.shape[2])]
                wall = max(np.sqrt(mz / np.pi) - np.sqrt(az / np.pi) for az, mz in zip(a, m) if az > 50)
        ed, es = vol["ED"], vol["ES"]
        rows.append(dict(patient_id=pid, group=g.group.iloc[0], lv_edv=ed["LV"], lv_ef=100 * (1 - es["LV"] / ed["LV"]),
                         rv_edv=ed["RV"], rv_ef=100 * (1 - es["RV"] / ed["RV"]), mass=1.05 * ed["MYO"], wall=wall))
    return pd.DataFrame(rows)


def test_labels_differ_by_group_as_designed(twin10):
    m = _measure(twin10)
    mean = m.groupby("group").mean(numeric_only=True)
    assert mean.lv_edv["DCM"] > 1.4 * mean.lv_edv["NOR"]
    assert (m[m.group.isin(["DCM", "MINF"])].lv_ef < 40).all()
    assert (m[m.group.isin(["NOR", "HCM", "RV"])].lv_ef > 48).all()
    assert mean.lv_ef["HCM"] > mean.lv_ef["NOR"]
    assert (m[m.group == "HCM"].wall > 14).all() and (m[m.group == "NOR"].wall < 13).all()
    assert mean.mass["HCM"] > 1.3 * mean.mass["NOR"]
    assert mean.rv_edv["RV"] > 1.5 * mean.rv_edv["NOR"]
    assert (m[m.group == "RV"].rv_ef < 40).all() and (m[m.group == "NOR"].rv_ef > 45).all()
    assert mean.lv_edv["HCM"] < mean.lv_edv["NOR"]


def test_frames_match_the_4d_and_share_the_affine(tiny):
    samples, _ = A.index(tiny)
    for row in samples.itertuples():
        case = A.read_case(row.path, row.gt_path, root=tiny)
        cine = nib.load(Path(row.path).parent / f"{row.patient_id}_4d.nii.gz")
        assert np.array_equal(np.asanyarray(cine.dataobj)[..., row.frame - 1], case.image)
        assert np.allclose(cine.affine, case.affine)
        assert case.image.dtype == np.float32 and case.label.dtype == np.uint8
        assert set(np.unique(case.label)) == {0, 1, 2, 3}
        assert 5 <= case.spacing[2] <= 10 and 1.3 <= case.spacing[0] == case.spacing[1] <= 1.8
        assert 6 <= case.image.shape[2] <= 10 and 128 <= min(case.image.shape[:2]) <= max(case.image.shape[:2]) <= 176
        # Bright blood, dark myocardium.
        assert case.image[case.label == 3].mean() > 2 * case.image[case.label == 2].mean()
        assert case.image[case.label == 1].mean() > 2 * case.image[case.label == 2].mean()
    arrays, meta = A.preprocess(samples.path[0], A.preprocess_config(64))
    assert arrays["image"].shape == arrays["label"].shape == (meta["shape"][2], 64, 64)
    assert arrays["image"].dtype == np.float32 and abs(float(arrays["image"].mean())) < 0.2
    assert len(meta["affine"]) == 4 and len(meta["spacing"]) == 3


def test_read_mask(tiny, tmp_path):
    samples, _ = A.index(tiny)
    case = A.read_case(samples.path[0], samples.gt_path[0])
    assert np.array_equal(A.read_mask(samples.gt_path[0], case), case.label)
    nib.Nifti1Image(case.label[:-1], case.affine).to_filename(tmp_path / "small.nii.gz")
    with pytest.raises(DataError, match=r"^small.nii.gz: shape"):
        A.read_mask(tmp_path / "small.nii.gz", case, root=tmp_path)
    nib.Nifti1Image(case.label * 2, case.affine).to_filename(tmp_path / "bad.nii.gz")
    with pytest.raises(DataError, match="outside 0-3"):
        A.read_mask(tmp_path / "bad.nii.gz", case)


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes(tiny, tmp_path):
    again = A.synthesize(tmp_path / "again", n=2, seed=5, workers=1, progress=False)
    files = sorted(str(p.relative_to(tiny)) for p in tiny.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(again)) for p in again.rglob("*") if p.is_file())
    match, mismatch, errors = filecmp.cmpfiles(tiny, again, files, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == len(files)
    other = A.synthesize(tmp_path / "other", n=1, seed=6, workers=1, progress=False)
    name = "training/patient001/patient001_frame01.nii.gz"
    assert (other / name).read_bytes() != (tiny / name).read_bytes()
    with pytest.raises(DataError, match="already exists"):
        A.synthesize(again, n=1, seed=5, progress=False)


# ----------------------------------------------------------------------------- verify through the CLI

P = "training/patient001"
ED_IMG, ED_GT = f"{P}/patient001_frame01.nii.gz", f"{P}/patient001_frame01_gt.nii.gz"


def _es(root: Path) -> int:
    return int(_info(root / P / "Info.cfg")["ES"])


def _resave(path: Path, fn) -> None:
    img = nib.load(path)
    data, affine = fn(np.asanyarray(img.dataobj), img.affine.copy())
    header = img.header.copy()
    header.set_data_dtype(data.dtype)
    nib.Nifti1Image(data, affine, header).to_filename(path)


def _edit_info(root: Path, fn) -> None:
    cfg = root / P / "Info.cfg"
    cfg.write_text("".join(fn(line) for line in cfg.read_text().splitlines(keepends=True)))


def _zero_spacing(root: Path) -> None:
    path = root / ED_IMG
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[88:92] = struct.pack("<f", 0.0)  # pixdim[3] of the NIfTI-1 header
    path.write_bytes(gzip.compress(bytes(raw)))


def _set_voxel(value):
    def fn(data, affine):
        data = data.astype(np.float32 if np.isnan(value) else data.dtype)
        data[data.shape[0] // 2, data.shape[1] // 2, 0] = value
        return data, affine
    return fn


INJECTIONS = {
    "label value 7": (lambda r: _resave(r / ED_GT, _set_voxel(7)), ED_GT, "label value(s) 7 outside 0-3"),
    "gt affine": (lambda r: _resave(r / ED_GT, lambda d, a: (d, a + _shift())), ED_GT, "affine differs"),
    "gt shape": (lambda r: _resave(r / ED_GT, lambda d, a: (d[:-2], a)), ED_GT, "shape"),
    "ED frame missing": (lambda r: (r / ED_IMG).unlink(), ED_IMG, "ED frame image missing"),
    "ES gt missing": (lambda r: (r / P / f"patient001_frame{_es(r):02d}_gt.nii.gz").unlink(),
                      None, "ES frame ground truth missing"),
    "Info.cfg missing": (lambda r: (r / P / "Info.cfg").unlink(), f"{P}/Info.cfg", "Info.cfg missing"),
    "Info.cfg without ES": (lambda r: _edit_info(r, lambda l: "" if l.startswith("ES:") else l), f"{P}/Info.cfg",
                            "no 'ES:' line"),
    "ES beyond NbFrame": (lambda r: _edit_info(r, lambda l: "ES: 35\n" if l.startswith("ES:") else l),
                          f"{P}/Info.cfg", "ES frame 35 is beyond NbFrame"),
    "truncated": (lambda r: (r / ED_IMG).write_bytes((r / ED_IMG).read_bytes()[:-20000]), ED_IMG, "truncated"),
    "text file": (lambda r: (r / ED_GT).write_text("this is not an image\n"), ED_GT, "not a readable NIfTI file"),
    "zero spacing": (_zero_spacing, ED_IMG, "voxel spacing"),
    "NaN voxels": (lambda r: _resave(r / ED_IMG, _set_voxel(np.nan)), ED_IMG, "1 NaN voxel"),
}


def _shift() -> np.ndarray:
    s = np.zeros((4, 4))
    s[:3, 3] = 2.5  # mm: the labels sit on another grid
    return s


def _verify(root: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cardiobench", "data", "verify", "acdc", str(root)], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_verify_clean_twin(tiny, tmp_path):
    r = _verify(tiny, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 error(s)" in r.stderr and "ERROR" not in r.stdout


@pytest.mark.parametrize("name", list(INJECTIONS))
def test_verify_names_each_injected_problem(tiny, tmp_path, name):
    inject, file, words = INJECTIONS[name]
    root = tmp_path / "broken"
    shutil.copytree(tiny, root)
    es_gt = f"{P}/patient001_frame{_es(root):02d}_gt.nii.gz"
    inject(root)
    r = _verify(root, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "Traceback" not in out
    errors = [line for line in r.stdout.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1, out
    assert errors[0].startswith(f"ERROR: {file or es_gt}: ") and words in errors[0], errors[0]
