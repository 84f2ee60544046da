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

The layout's names, paths and CSV reader live in :mod:`cardiobench.tasks.ctrate.layout`, reading one
volume and its mask in :mod:`cardiobench.tasks.ctrate.volume`, the preprocessing in
:mod:`cardiobench.tasks.ctrate.preprocess` and the twin in :mod:`cardiobench.tasks.ctrate.twin`; this
module indexes and verifies a release and registers the format (their public names are importable
from here too).
"""
from __future__ import annotations

import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ...data.format import module_format
from ...data.nifti import FileProblem, direction_problem, rel_path
from ...data.problems import Problem, split_problems
from ...errors import CardiobenchError, DataError
from ..chest_ct.format import geometry_problems, hu_problem
from . import preprocess as ctrate_preprocess
from . import twin as ctrate_twin
from .layout import (_MASK_HINT, _VOLUME, LABEL_FILES, LABELS, MASK_IDS, MASK_MAX, MASKS, METADATA,  # noqa: F401
                     METADATA_COLUMNS, NOT_GIVEN, REPORT_COLUMNS, REPORTS, SPACING_KEYS, SPLITS, _data_root, _read_csv,
                     _split_key, mask_path, metadata_file, normalize_id, parse_volume_name, split_folder, volume_path)
from .volume import Calibration, calibration, read_mask, read_volume

NAME = "ct_rate"


def slug(label: str) -> str:
    """A label as a column name: lower case, every run of non-alphanumerics one ``_`` (``lung_nodule``)."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


COLUMNS = ["sample_id", "patient_id", "scan_id", "split", "folder", "path", "image", "mask", "mask_ids",
           "spacing_x", "spacing_y", "spacing_z", "rescale_slope", "rescale_intercept", "has_report",
           *[slug(label) for label in LABELS], "manufacturer", "sex", "age"]


# ----------------------------------------------------------------------------- names and folders


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


def _first_rows(df: pd.DataFrame, rel: str) -> tuple[pd.DataFrame, list[Problem]]:
    """One row per VolumeName (the first); each repeat is a problem."""
    dup = df.duplicated("VolumeName", keep="first")
    first = df.drop_duplicates("VolumeName", keep="first").set_index("VolumeName")
    problems = [Problem(rel, f"line {r.line} ({r.VolumeName}): VolumeName already on line "
                             f"{first.at[r.VolumeName, 'line']}; row skipped", sample=r.VolumeName)
                for r in df[dup].itertuples()]
    return df[~dup], problems


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


def _age_years(text: str) -> float:
    """DICOM's age string ("057Y", "006M") or a plain number, in years; NaN when unreadable."""
    t = str(text or "").strip().upper()
    scale = {"Y": 1.0, "M": 1 / 12, "W": 1 / 52, "D": 1 / 365}.get(t[-1:], None)
    try:
        return float(t[:-1]) * scale if scale else float(t)
    except ValueError:
        return float("nan")


def _demographics(root: Path, key: str) -> dict[str, dict]:
    """Manufacturer, sex (M/F) and age in years per VolumeName from the metadata CSV, where it has them
    (a release without these columns simply gives none: they only feed the page's subgroup tables)."""
    try:
        df = read_metadata(root, key)
    except DataError:
        return {}
    out = {}
    for r in df.drop_duplicates("VolumeName", keep="first").to_dict("records"):  # as _metadata: the first row
        sex = str(r.get("PatientSex") or "").strip().upper()[:1]
        out[r["VolumeName"]] = {"manufacturer": str(r.get("Manufacturer") or "").strip() or None,
                                "sex": sex if sex in ("M", "F") else None,
                                "age": _age_years(r.get("PatientAge"))}
    return out


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
    people = _demographics(root, key)
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
                     "has_report": name in reported, **{slug(c): np.nan for c in LABELS}, **labels.get(name, {}),
                     **people.get(name, {"manufacturer": None, "sex": None, "age": np.nan})})
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

TWIN_VERSION = 5  # bump when the twin (twin.py, the phantom/ package) changes: its cache key
#                   (v5: PatientSex, PatientAge and Manufacturer in the metadata, as CT-RATE's)
PAPER_IMAGE = ctrate_preprocess.PAPER_IMAGE
preprocess_config = ctrate_preprocess.preprocess_config
preprocess = ctrate_preprocess.preprocess
companions = ctrate_preprocess.companions


def synthesize(out: str | os.PathLike, n: int = 160, seed: int = 0, workers: int = 2, progress: bool = True) -> Path:
    """The CT-RATE twin (:mod:`cardiobench.tasks.ctrate.twin`) of ``n`` volumes, in this layout."""
    return ctrate_twin.synthesize(out, n=n, seed=seed, workers=workers, progress=progress)


FORMAT = module_format(
    sys.modules[__name__],
    index_files=(*METADATA.values(), *REPORTS.values(), *LABEL_FILES.values()),
    description="CT-RATE (Hamamci et al.): {train,valid}[_fixed]/<split>_<pid>/<scan>/<volume>.nii.gz + metadata, "
                "reports and multi-abnormality label CSVs; TotalSegmentator organ masks under masks/",
    extras=("read_volume", "read_mask", "read_reports", "read_labels", "split_train_val", "companions"),
    default_twin_n=160)
