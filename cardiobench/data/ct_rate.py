"""Format ``ct_rate``: the CT-RATE release (Hamamci et al. 2024), chest CT with reports and 18 abnormality labels.

Released layout (the Hugging Face download keeps it under ``dataset/``; pass that folder as the root)::

    <root>/train/train_<pid>/train_<pid>_<scan>/train_<pid>_<scan>_<rec>.nii.gz   (and valid/valid_...)
    <root>/train_fixed/..., <root>/valid_fixed/...     the same volumes re-released with repaired headers
    <root>/metadata/{train,validation}_metadata.csv
        VolumeName, XYSpacing ("[x, y]" in mm), ZSpacing, RescaleSlope, RescaleIntercept, ... (others ignored)
    <root>/radiology_text_reports/{train,validation}_reports.csv
        VolumeName, ClinicalInformation_EN, Technique_EN, Findings_EN, Impressions_EN ("Not given." = empty)
    <root>/multi_abnormality_labels/{train,valid}_predicted_labels.csv
        VolumeName + the 18 labels of :data:`LABELS`, each 0/1
    <root>/masks/<VolumeName>     organ label maps made beforehand with TotalSegmentator (ours, optional)

``pid`` is an integer, ``scan`` a letter, ``rec`` an integer (one scan has several reconstructions).
When both ``<split>_fixed/`` and ``<split>/`` exist, the whole ``_fixed`` folder is read and the
original ignored (per split folder). VolumeName keeps its ``.nii.gz`` suffix everywhere, as in the
CSVs: it is the sample id; the patient is ``<split>_<pid>`` and the scan ``<split>_<pid>_<scan>``.
``train`` is TRAIN and ``valid`` is TEST (CT-RATE's validation set is the published test set);
:func:`split_train_val` draws VAL patients from TRAIN.

The dataset's correction note: spacing and rescale come from the metadata CSV, never from the
NIfTI header (the first release had blank headers; the fixed one stores int16 with a header
scl_slope/scl_inter). So the stored voxel values are read unscaled and the CSV's slope and
intercept applied once; the voxel sizes come from the CSV and only the axis directions and origin
from the header. Problems name their file relative to the root and, for CSV rows, the line
(header = line 1) and the VolumeName.
"""
from __future__ import annotations

import csv
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..errors import CardiobenchError, DataError
from . import ctrate_preprocess, module_format
from .ct_echo import geometry_problems, hu_problem
from .nifti import FileProblem, Volume, as_labels, direction_problem, rel_path, three_d
from .problems import Problem, split_problems
from .textfile import duplicated, text_stream

NAME = "ct_rate"
SPLITS = {"train": "TRAIN", "valid": "TEST"}
METADATA = {"train": "metadata/train_metadata.csv", "valid": "metadata/validation_metadata.csv"}
REPORTS = {"train": "radiology_text_reports/train_reports.csv",
           "valid": "radiology_text_reports/validation_reports.csv"}
LABEL_FILES = {"train": "multi_abnormality_labels/train_predicted_labels.csv",
               "valid": "multi_abnormality_labels/valid_predicted_labels.csv"}
MASKS = "masks"
MASK_IDS = ("v2", "v1")
MASK_MAX = 255  # masks are cached as uint8 class ids (TotalSegmentator v2 goes to 117, v1 to 104)  # TotalSegmentator class-id tables; the tables themselves live in the organ module
LABELS = ["Medical material", "Arterial wall calcification", "Cardiomegaly", "Pericardial effusion",
          "Coronary artery wall calcification", "Hiatal hernia", "Lymphadenopathy", "Emphysema", "Atelectasis",
          "Lung nodule", "Lung opacity", "Pulmonary fibrotic sequela", "Pleural effusion",
          "Mosaic attenuation pattern", "Peribronchial thickening", "Consolidation", "Bronchiectasis",
          "Interlobular septal thickening"]
REPORT_COLUMNS = ["ClinicalInformation_EN", "Technique_EN", "Findings_EN", "Impressions_EN"]
NOT_GIVEN = "Not given."
METADATA_COLUMNS = ["VolumeName", "XYSpacing", "ZSpacing", "RescaleSlope", "RescaleIntercept"]
SPACING_KEYS = ("XYSpacing (x)", "XYSpacing (y)", "ZSpacing")  # where each axis's voxel size is written
_VOLUME = re.compile(r"^(train|valid)_(\d+)_([a-z]+)_(\d+)\.nii\.gz$")
_MASK_HINT = ("organ masks are an input: TotalSegmentator label maps named like their volume under masks/; "
              "segmentation weights cannot be fetched at run time, so make them with TotalSegmentator beforehand")


def slug(label: str) -> str:
    """A label as a column name: lower case, every run of non-alphanumerics one ``_`` (``lung_nodule``)."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


COLUMNS = ["sample_id", "patient_id", "scan_id", "split", "folder", "path", "image", "mask", "mask_ids",
           "spacing_x", "spacing_y", "spacing_z", "rescale_slope", "rescale_intercept", "has_report",
           *[slug(label) for label in LABELS]]


# ----------------------------------------------------------------------------- names and folders


def normalize_id(text: str) -> str:
    """A VolumeName as users write it (spaces, quotes, without ``.nii.gz``) -> as the index has it."""
    name = str(text).strip().strip('"').strip("'")
    return name if name.endswith(".nii.gz") else f"{name}.nii.gz"


def parse_volume_name(name: str) -> dict[str, str] | None:
    """``split``, ``patient_id``, ``scan_id`` of a VolumeName (None when it is not a CT-RATE name)."""
    m = _VOLUME.match(name)
    if m is None:
        return None
    split, pid, scan, _ = m.groups()
    return {"split": split, "patient_id": f"{split}_{pid}", "scan_id": f"{split}_{pid}_{scan}"}


def _split_key(split: str) -> str:
    key = str(split).strip().lower()
    key = {"validation": "valid", "test": "valid"}.get(key, key)
    if key not in SPLITS:
        raise CardiobenchError(f"unknown CT-RATE split {split!r}; choose train or valid")
    return key


def _data_root(root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    if not any((root / f).is_dir() for s in SPLITS for f in (f"{s}_fixed", s)):
        hint = " (the Hugging Face download keeps them under dataset/: pass that folder)" \
            if (root / "dataset").is_dir() else ""
        raise DataError(f"{root}: no CT-RATE volumes: expected train_fixed/, train/, valid_fixed/ or valid/{hint}")
    return root


def split_folder(root: str | os.PathLike, split: str) -> Path | None:
    """The folder read for ``split``: ``<split>_fixed/`` when it exists, else ``<split>/``, else None."""
    key = _split_key(split)
    for name in (f"{key}_fixed", key):
        if (Path(root) / name).is_dir():
            return Path(root) / name
    return None


def volume_path(root: str | os.PathLike, volume_name: str) -> Path:
    """Where a VolumeName lives under ``root`` (in the folder :func:`split_folder` picks)."""
    parts = parse_volume_name(volume_name)
    if parts is None:
        raise DataError(f"{volume_name}: not a CT-RATE VolumeName (<split>_<pid>_<scan>_<rec>.nii.gz)")
    folder = split_folder(root, parts["split"])
    if folder is None:
        raise DataError(f"{root}: neither {parts['split']}_fixed/ nor {parts['split']}/ exists")
    return folder / parts["patient_id"] / parts["scan_id"] / volume_name


def _find_volumes(root: Path, folder: Path, split: str) -> tuple[dict[str, Path], list[Problem]]:
    """VolumeName -> file for every ``*.nii.gz`` two folders down ``folder``; misnamed or misplaced
    files are problems (they would otherwise vanish from the index unnoticed)."""
    found: dict[str, Path] = {}
    problems = []
    for path in sorted(folder.glob("*/*/*.nii.gz")):
        rel = rel_path(path, root)
        parts = parse_volume_name(path.name)
        if parts is None or parts["split"] != split:
            problems.append(Problem(rel, f"not a {split} volume name ({split}_<pid>_<scan>_<rec>.nii.gz); ignored",
                                    severity="warning"))
            continue
        if (path.parent.parent.name, path.parent.name) != (parts["patient_id"], parts["scan_id"]):
            problems.append(Problem(rel, f"misplaced: expected under {folder.name}/{parts['patient_id']}/"
                                         f"{parts['scan_id']}/; ignored", sample=path.name))
            continue
        found[path.name] = path
    return found, problems


# ----------------------------------------------------------------------------- CSV files


def _read_csv(root: Path, rel: str, required: list[str]) -> tuple[pd.DataFrame, list[Problem]]:
    """A CSV as strings with each row's physical line (reports hold quoted newlines, so the row
    number is not the line); DataError naming the file when missing, unreadable or lacking
    ``required`` columns. Rows with the wrong number of fields are problems, not rows."""
    path = root / rel
    if not path.is_file():
        raise DataError(f"{rel}: missing")
    rows, lines, problems = [], [], []
    try:
        with text_stream(path, rel) as fh:  # DataError naming the file and its encoding when it is not text
            reader = csv.reader(fh)
            header = [c.strip() for c in next(reader, [])]
            if duplicated(header):
                raise DataError(f"{rel}: column(s) {', '.join(duplicated(header))} appear more than once in the "
                                "header; which one holds the value is ambiguous")
            last = reader.line_num
            for record in reader:
                line, last = last + 1, reader.line_num
                if not any(f.strip() for f in record):
                    continue
                if len(record) != len(header):
                    problems.append(Problem(rel, f"line {line} ({record[0] if record else '?'}): has "
                                                 f"{len(record)} fields, the header {len(header)}; row skipped"))
                    continue
                rows.append([f.strip() for f in record])
                lines.append(line)
    except (csv.Error, OSError) as exc:
        raise DataError(f"{rel}: not a readable CSV ({type(exc).__name__}: {exc})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{rel}: lacks column(s) {', '.join(missing)} (found {', '.join(header) or 'none'})")
    return pd.DataFrame(rows, columns=header).assign(line=lines), problems


def _first_rows(df: pd.DataFrame, rel: str) -> tuple[pd.DataFrame, list[Problem]]:
    """One row per VolumeName (the first); each repeat is a problem."""
    dup = df.duplicated("VolumeName", keep="first")
    first = df.drop_duplicates("VolumeName", keep="first").set_index("VolumeName")
    problems = [Problem(rel, f"line {r.line} ({r.VolumeName}): VolumeName already on line "
                             f"{first.at[r.VolumeName, 'line']}; row skipped", sample=r.VolumeName)
                for r in df[dup].itertuples()]
    return df[~dup], problems


@dataclass(frozen=True)
class Calibration:
    """What the metadata CSV says about one volume: voxel sizes (x, y, z) in mm and the rescale to HU."""

    spacing: tuple[float, float, float]
    slope: float
    intercept: float


def _positive(text: Any, what: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        v = float("nan")
    if not (np.isfinite(v) and v > 0):
        raise DataError(f"{what} {text!r} is not a positive number")
    return v


def _finite(text: Any, what: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        v = float("nan")
    if not np.isfinite(v):
        raise DataError(f"{what} {text!r} is not a number")
    return v


def calibration(row: Mapping[str, Any]) -> Calibration:
    """The spacing and rescale of a metadata CSV row (or of an index row); DataError saying which
    value is wrong."""
    if "spacing_x" in row:  # an index row: already parsed
        return Calibration((float(row["spacing_x"]), float(row["spacing_y"]), float(row["spacing_z"])),
                           float(row["rescale_slope"]), float(row["rescale_intercept"]))
    xy = str(row["XYSpacing"]).strip()
    fields = xy[1:-1].split(",") if xy[:1] in "[(" and xy[-1:] in "])" and len(xy) > 1 else []
    if len(fields) != 2:
        raise DataError(f"XYSpacing {xy!r} is not '[x, y]'")
    # DICOM PixelSpacing is (row, column) spacing; CT pixels are square, so the order does not matter in practice
    x, y = (_positive(f, "XYSpacing value") for f in fields)
    slope = _finite(row["RescaleSlope"], "RescaleSlope")
    if slope == 0:
        raise DataError("RescaleSlope is 0")
    return Calibration((x, y, _positive(row["ZSpacing"], "ZSpacing")), slope,
                       _finite(row["RescaleIntercept"], "RescaleIntercept"))


def read_metadata(root: str | os.PathLike, split: str) -> pd.DataFrame:
    """The metadata CSV of ``split`` as strings (all columns) with its line numbers."""
    key = _split_key(split)
    return _read_csv(Path(root), METADATA[key], METADATA_COLUMNS)[0]


def read_reports(root: str | os.PathLike, split: str) -> pd.DataFrame:
    """The report CSV of ``split``: VolumeName, the four ``*_EN`` sections ("Not given." and blanks
    as ""), any other columns, and ``line``."""
    key = _split_key(split)
    df, _ = _read_csv(Path(root), REPORTS[key], ["VolumeName", *REPORT_COLUMNS])
    for c in REPORT_COLUMNS:
        df[c] = df[c].where(df[c] != NOT_GIVEN, "")
    return df


def _read_label_strings(root: Path, key: str) -> tuple[pd.DataFrame, list[Problem]]:
    """The label CSV as strings; a missing or extra label column is one problem each (the others are read)."""
    rel = LABEL_FILES[key]
    df, problems = _read_csv(root, rel, ["VolumeName"])
    present = [c for c in df.columns if c not in ("VolumeName", "line")]
    missing = [c for c in LABELS if c not in present]
    extra = [c for c in present if c not in LABELS]
    if missing:
        problems.append(Problem(rel, f"lacks label column(s) {', '.join(missing)}: those labels are unknown"))
    if extra:
        problems.append(Problem(rel, f"has column(s) {', '.join(extra)} that are not CT-RATE labels: ignored",
                                severity="warning"))
    return df, problems


def _label_value(text: str) -> float:
    return {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0}.get(text, float("nan"))


def read_labels(root: str | os.PathLike, split: str) -> pd.DataFrame:
    """The label CSV of ``split``: VolumeName, the :data:`LABELS` columns as 0.0/1.0 (NaN for a
    missing column or a value that is not 0/1; :func:`verify` names those) and ``line``."""
    df, _ = _read_label_strings(Path(root), _split_key(split))
    out = df[["VolumeName", "line"]].copy()
    for label in LABELS:
        out[label] = df[label].map(_label_value) if label in df else np.nan
    return out[["VolumeName", *LABELS, "line"]]


def _label_problems(df: pd.DataFrame, rel: str) -> list[Problem]:
    """One problem per row with a value that is not 0/1 (that row's labels are then unknown)."""
    problems = []
    columns = [c for c in LABELS if c in df]
    for r in df.to_dict("records"):
        bad = [f"{c} {r[c]!r}" for c in columns if np.isnan(_label_value(r[c]))]
        if bad:
            problems.append(Problem(rel, f"line {r['line']} ({r['VolumeName']}): label value(s) not 0 or 1: "
                                         f"{', '.join(bad)}; the row's labels are unknown", sample=r["VolumeName"]))
    return problems


# ----------------------------------------------------------------------------- index


def _orphans(df: pd.DataFrame, rel: str, volumes: Mapping[str, Path], what: str, folder: str) -> list[Problem]:
    """A report or label row whose volume is not on disk (an incomplete download leaves the test set short)."""
    return [Problem(rel, f"line {r.line} ({r.VolumeName}): {what} row for a volume that does not exist "
                         f"under {folder}/", sample=r.VolumeName)
            for r in df.itertuples() if r.VolumeName not in volumes]


def _metadata(root: Path, key: str, volumes: Mapping[str, Path]) -> tuple[dict[str, Calibration], list[Problem]]:
    """Calibration per volume; a volume without a usable metadata row is a problem (it cannot be read in HU)."""
    rel = METADATA[key]
    try:
        df, problems = _read_csv(root, rel, METADATA_COLUMNS)
    except DataError as exc:
        return {}, [Problem(rel, f"{str(exc).split(': ', 1)[-1]}: it holds each volume's spacing and rescale, so "
                                 f"no {key} volume can be read")]
    df, dups = _first_rows(df, rel)
    problems += dups
    out: dict[str, Calibration] = {}
    for r in df.to_dict("records"):
        if r["VolumeName"] not in volumes:
            continue  # the CSV covers the whole release; a partial download is fine here
        try:
            cal = calibration(r)
        except DataError as exc:
            problems.append(Problem(rel, f"line {r['line']} ({r['VolumeName']}): {exc}; volume skipped",
                                    sample=r["VolumeName"]))
            continue
        found = geometry_problems(cal.spacing, None, SPACING_KEYS)
        problems += [Problem(rel, f"line {r['line']} ({r['VolumeName']}): {why}; volume "
                                  f"{'skipped' if severity == 'error' else 'kept'}", severity=severity,
                             sample=r["VolumeName"]) for severity, why in found]
        if not any(severity == "error" for severity, _ in found):
            out[r["VolumeName"]] = cal
    listed = set(df["VolumeName"])
    problems += [Problem(rel_path(p, root), f"no row in {rel} (spacing and rescale unknown); volume skipped",
                         sample=name) for name, p in volumes.items() if name not in listed]
    return out, problems


def _reports_listed(root: Path, key: str, volumes: Mapping[str, Path], folder: str) -> tuple[set[str], list[Problem]]:
    rel = REPORTS[key]
    try:
        df, problems = _read_csv(root, rel, ["VolumeName", *REPORT_COLUMNS])
    except DataError as exc:
        return set(), [Problem(rel, f"{str(exc).split(': ', 1)[-1]}: no {key} reports")]
    df, dups = _first_rows(df, rel)
    return set(df["VolumeName"]), problems + dups + _orphans(df, rel, volumes, "report", folder)


def _labels(root: Path, key: str, volumes: Mapping[str, Path], folder: str) -> tuple[dict[str, dict], list[Problem]]:
    """Label slug -> 0.0/1.0 per volume (rows with a bad value left out, as problems)."""
    rel = LABEL_FILES[key]
    try:
        df, problems = _read_label_strings(root, key)
    except DataError as exc:
        return {}, [Problem(rel, f"{str(exc).split(': ', 1)[-1]}: no {key} labels")]
    df, dups = _first_rows(df, rel)
    problems += dups + _orphans(df, rel, volumes, "label", folder)
    bad = _label_problems(df, rel)
    skip = {p.sample for p in bad}
    columns = [c for c in LABELS if c in df]
    out = {r["VolumeName"]: {slug(c): _label_value(r[c]) for c in columns}
           for r in df.to_dict("records") if r["VolumeName"] not in skip}
    return out, problems + bad


def _split_rows(root: Path, key: str, folder: Path, mask_ids: str) -> tuple[list[dict], list[Problem]]:
    volumes, problems = _find_volumes(root, folder, key)
    meta, p = _metadata(root, key, volumes)
    problems += p
    reported, p = _reports_listed(root, key, volumes, folder.name)
    problems += p
    labels, p = _labels(root, key, volumes, folder.name)
    problems += p
    rows = []
    for name, path in volumes.items():
        if name not in meta:
            continue
        cal, mask, ids = meta[name], mask_path(root, name), parse_volume_name(name)
        rows.append({"sample_id": name, "patient_id": ids["patient_id"], "scan_id": ids["scan_id"],
                     "split": SPLITS[key], "folder": folder.name, "path": os.path.abspath(path),
                     "image": rel_path(path, root), "mask": rel_path(mask, root) if mask.is_file() else None,
                     "mask_ids": mask_ids, "spacing_x": cal.spacing[0], "spacing_y": cal.spacing[1],
                     "spacing_z": cal.spacing[2], "rescale_slope": cal.slope, "rescale_intercept": cal.intercept,
                     "has_report": name in reported, **{slug(c): np.nan for c in LABELS}, **labels.get(name, {})})
    return rows, problems


def _check_mask_ids(mask_ids: str) -> str:
    if mask_ids not in MASK_IDS:
        raise CardiobenchError(f"mask_ids {mask_ids!r} unknown; choose {' or '.join(MASK_IDS)}")
    return mask_ids


def _sort_key(name: str) -> tuple:
    split, pid, scan, rec = _VOLUME.match(name).groups()
    return split, int(pid), scan, int(rec)


def index(root: str | os.PathLike, mask_ids: str = "v2") -> tuple[pd.DataFrame, list[Problem]]:
    """One row per volume with a usable metadata row (no decoding); labels are NaN where unknown and
    ``mask`` (relative path) is missing where ``masks/`` has no file for the volume.
    ``mask_ids`` (``v2`` or ``v1``) names the TotalSegmentator id table of ``masks/`` and is only
    carried. DataError when the root holds no CT-RATE split folder."""
    root = _data_root(root)
    _check_mask_ids(mask_ids)
    rows, problems = [], []
    for key in SPLITS:
        folder = split_folder(root, key)
        if folder is not None:  # a split not downloaded is not a problem
            r, p = _split_rows(root, key, folder, mask_ids)
            rows += r
            problems += p
    samples = pd.DataFrame(rows, columns=COLUMNS)
    if len(samples):
        samples = samples.iloc[sorted(range(len(samples)), key=lambda i: _sort_key(samples.sample_id.iat[i]))]
    return samples.reset_index(drop=True), problems


def split_train_val(samples: pd.DataFrame, val_fraction: float, seed: int) -> pd.Series:
    """TRAIN/VAL/TEST per row (aligned with ``samples.index``): a seeded ``val_fraction`` of the TRAIN
    patients becomes VAL, whole patients only (every scan and reconstruction of a patient stays
    together); the same for the same patients and seed whatever the row order."""
    if not 0 <= val_fraction < 1:
        raise CardiobenchError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out = samples["split"].astype(str).copy()
    patients = sorted(samples.loc[out == "TRAIN", "patient_id"].unique())
    n = len(patients)
    take = int(round(val_fraction * n))
    if val_fraction > 0 and n >= 2:
        take = min(max(take, 1), n - 1)  # a VAL split exists and TRAIN keeps someone
    chosen = {patients[i] for i in np.random.default_rng(seed).permutation(n)[:take]}
    out[(out == "TRAIN") & samples["patient_id"].isin(chosen)] = "VAL"
    out.name = "split"
    return out


# ----------------------------------------------------------------------------- volumes and masks


def _read_stored(path: Path, rel: str) -> tuple[np.ndarray, np.ndarray]:
    """The voxel values as stored (no header scl_slope/scl_inter) and the header affine; FileProblem otherwise.
    nifti.load is not used: it applies the header scaling and refuses the first release's blank pixdim."""
    import nibabel as nib

    if not path.is_file():
        raise FileProblem(rel, "file not found")
    try:
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.shape)
        affine = np.asarray(img.affine, dtype=np.float64)
    except Exception as exc:  # nibabel/gzip raise many types for non-NIfTI or damaged headers
        raise FileProblem(rel, f"truncated or not a readable NIfTI file ({type(exc).__name__}: {exc})") from None
    shape = three_d(shape, rel)
    direction = direction_problem(affine)
    if direction is not None and direction[0] == "error":
        raise FileProblem(rel, direction[1])
    try:
        data = np.asanyarray(img.dataobj.get_unscaled()).reshape(shape)
    except Exception as exc:  # EOFError / zlib.error / OSError / ValueError for truncated or corrupt data
        raise FileProblem(rel, f"truncated or corrupt: cannot decode the voxel data ({type(exc).__name__}: "
                               f"{exc})") from None
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise FileProblem(rel, "contains NaN or infinite voxel values")
    return data, affine


def _affine(header: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """The header's axis directions and origin with the CSV's voxel sizes (the header's direction
    matrix has passed :func:`~cardiobench.data.nifti.direction_problem`: finite, no zero column)."""
    rot = header[:3, :3]
    out = np.eye(4)
    out[:3, :3] = rot / np.linalg.norm(rot, axis=0) * np.asarray(spacing)
    out[:3, 3] = header[:3, 3]
    return out


def read_volume(root_or_path: str | os.PathLike, metadata_row: Mapping[str, Any]) -> Volume:
    """One volume in HU (float32): stored values x the CSV's RescaleSlope + RescaleIntercept, the
    affine's voxel sizes and the zooms from the CSV. ``root_or_path``: the dataset root (the file is
    found from the row's VolumeName or sample_id) or the file itself; ``metadata_row``: a row of the
    metadata CSV or of :func:`index`. Raises :class:`FileProblem` naming the file.

    CT-CLIP's loader (data_inference_nii.py) differs: it uses ``get_fdata()``, which also applies a
    header scl_slope/scl_inter and so scales the fixed release twice; it keeps only the first
    XYSpacing value; and it transposes to (z, x, y) for its resampling. Here the array stays (x, y, z)
    as stored and orientation is left to the affine."""
    path = Path(root_or_path)
    root = path if path.is_dir() else None
    if root is not None:
        path = volume_path(root, str(metadata_row.get("VolumeName", metadata_row.get("sample_id"))))
    rel = rel_path(path, root)
    try:
        cal = calibration(metadata_row)
    except DataError as exc:
        raise FileProblem(rel, f"metadata: {exc}") from None
    stored, header = _read_stored(path, rel)
    notes = []
    for severity, why in geometry_problems(cal.spacing, stored.shape, SPACING_KEYS):
        if severity == "error":
            raise FileProblem(rel, f"{why} (spacing from {metadata_file(path.name)})")
        notes.append(why)
    direction = direction_problem(header)
    notes += [direction[1]] if direction is not None else []
    hu = stored.astype(np.float32) * np.float32(cal.slope) + np.float32(cal.intercept)
    return Volume(hu, _affine(header, cal.spacing), cal.spacing, notes)


def metadata_file(volume_name: str) -> str:
    """The metadata CSV (relative to the root) that holds a volume's spacing and rescale."""
    return METADATA["valid" if str(volume_name).startswith("valid_") else "train"]


def mask_path(root: str | os.PathLike, volume_name: str) -> Path:
    """Where the organ mask of a volume is expected: ``<root>/masks/<VolumeName>``."""
    return Path(root) / MASKS / volume_name


def read_mask(root: str | os.PathLike, volume_name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The TotalSegmentator label map of a volume as uint8 class ids (whole numbers stored as floats
    converted exactly); FileProblem saying what is missing and how to make it, when its shape differs
    from ``shape``, or when a value is not a class id (fractional, negative, over 255)."""
    path = mask_path(root, volume_name)
    rel = rel_path(path, root)
    if not path.is_file():
        raise FileProblem(rel, f"missing: {_MASK_HINT}")
    data, _ = _read_stored(path, rel)
    if shape is not None and tuple(data.shape) != tuple(shape):
        raise FileProblem(rel, f"shape {tuple(data.shape)} differs from its volume's {tuple(shape)}")
    return as_labels(data, rel, MASK_MAX, "TotalSegmentator class ids, stored as uint8")


# ----------------------------------------------------------------------------- verify


def _header_shape(path: Path, rel: str) -> tuple[int, ...]:
    """A volume's shape from its header, whose direction matrix must be usable (no decoding)."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        shape, affine = tuple(int(s) for s in img.shape)[:3], np.asarray(img.affine, dtype=np.float64)
    except Exception as exc:
        raise FileProblem(rel, f"truncated or not a readable NIfTI file ({type(exc).__name__}: {exc})") from None
    direction = direction_problem(affine)
    if direction is not None and direction[0] == "error":
        raise FileProblem(rel, direction[1])
    return shape


def _volume_problems(row: Mapping[str, Any], decode: bool) -> tuple[tuple[int, ...] | None, list[Problem]]:
    """(shape or None when refused, problems) of one volume: decoded through :func:`read_volume` (the
    checks its preprocessing makes, then the HU range) when ``decode``, else its header only."""
    name = row["sample_id"]
    try:
        if not decode:
            return _header_shape(Path(row["path"]), row["image"]), []
        vol = read_volume(row["path"], row)
    except FileProblem as exc:
        return None, [Problem(row["image"], exc.problem, sample=name)]
    wrong = hu_problem(vol.data)
    if wrong:  # e.g. a release whose voxels already hold HU would be shifted twice here
        return None, [Problem(row["image"], f"{wrong} (CSV slope {row['rescale_slope']:g}, intercept "
                                            f"{row['rescale_intercept']:g})", sample=name)]
    return vol.data.shape, [Problem(row["image"], note, severity="warning", sample=name) for note in vol.notes]


def _check_sample(root: Path, row: Mapping[str, Any], decode: bool) -> list[Problem]:
    """The volume (see :func:`_volume_problems`) and its mask: decoded (class ids) and of its shape."""
    name = row["sample_id"]
    shape, problems = _volume_problems(row, decode)
    if shape is None or pd.isna(row["mask"]):  # no mask: reported once by _mask_problems
        return problems
    try:
        mask_shape = read_mask(root, name).shape if decode else _header_shape(root / row["mask"], row["mask"])
    except FileProblem as exc:
        return problems + [Problem(exc.file, exc.problem, sample=name)]
    if tuple(mask_shape) != tuple(shape):
        problems.append(Problem(row["mask"], f"shape {tuple(mask_shape)} differs from its volume's {tuple(shape)}",
                                sample=name))
    return problems


def _mask_problems(root: Path, samples: pd.DataFrame) -> list[Problem]:
    """Missing masks, as warnings: only the organ tasks need them (with their ``image.masks=true``,
    ``data cache`` and a run refuse a volume without its mask)."""
    if not len(samples):
        return []
    if not (root / MASKS).is_dir():
        return [Problem(f"{MASKS}/", f"not found: {_MASK_HINT}", severity="warning")]
    return [Problem(f"{MASKS}/{r.sample_id}", f"missing: {_MASK_HINT}", severity="warning", sample=r.sample_id)
            for r in samples.itertuples() if pd.isna(r.mask)]


def split_sources(root: str | os.PathLike) -> dict[str, str]:
    """Where each split's volumes come from: TRAIN from train[_fixed]/, TEST from valid[_fixed]/ (VAL
    patients are drawn from TRAIN by a run)."""
    train, test = (f"{(split_folder(root, key) or Path(root) / key).name}/" for key in ("train", "valid"))
    return {"TRAIN": train, "VAL": f"{train} (VAL patients are drawn from it)", "TEST": test}


def verify(root: str | os.PathLike, decode: bool = True, progress: bool = True, workers: int = 2,
           mask_ids: str = "v2") -> list[Problem]:
    """Every problem of a CT-RATE folder: the CSVs (missing, label columns and values, rows without a
    volume, volumes without metadata), misplaced files, missing masks (warnings), each mask's shape
    against its volume and, with ``decode``, each volume and mask decoded (truncated files) and the
    volume's HU range. Never raises for bad data."""
    try:
        samples, problems = index(root, mask_ids)
    except DataError as exc:
        return [Problem(str(root), str(exc).split(": ", 1)[-1])]
    root = Path(root)
    sources = {k: v for k, v in split_sources(root).items() if k != "VAL"}  # VAL is drawn by a run
    problems += _mask_problems(root, samples) + split_problems(list(samples.split), sources, "volumes", problems)
    rows = samples.to_dict("records")
    with ThreadPoolExecutor(max(1, workers)) as pool:
        found = list(tqdm(pool.map(lambda r: _check_sample(root, r, decode), rows), total=len(rows),
                          desc="verify ct_rate volumes", unit="volume", disable=not progress))
    return problems + [p for ps in found for p in ps]


# ----------------------------------------------------------------------------- registration

TWIN_VERSION = 4  # bump when the twin (data/ctrate_twin.py, twins/ctrate_phantom.py) changes: its cache key
PAPER_IMAGE = ctrate_preprocess.PAPER_IMAGE
preprocess_config = ctrate_preprocess.preprocess_config
preprocess = ctrate_preprocess.preprocess
companions = ctrate_preprocess.companions


def synthesize(out: str | os.PathLike, n: int = 160, seed: int = 0, workers: int = 2, progress: bool = True) -> Path:
    """The CT-RATE twin (:mod:`cardiobench.data.ctrate_twin`) of ``n`` volumes, in this layout."""
    from .ctrate_twin import synthesize as write_twin

    return write_twin(out, n=n, seed=seed, workers=workers, progress=progress)


FORMAT = module_format(
    sys.modules[__name__],
    index_files=(*METADATA.values(), *REPORTS.values(), *LABEL_FILES.values()),
    description="CT-RATE (Hamamci et al.): {train,valid}[_fixed]/<split>_<pid>/<scan>/<volume>.nii.gz + metadata, "
                "reports and multi-abnormality label CSVs; TotalSegmentator organ masks under masks/",
    extras=("read_volume", "read_mask", "read_reports", "read_labels", "split_train_val", "companions"),
    default_twin_n=160)
