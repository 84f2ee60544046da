"""The CT-RATE release layout (format ``ct_rate``): split folders, file names and VolumeNames, the
CSV files and their columns, the 18 labels, where an organ mask lives, and reading one of its CSV
files with each row's line number. See :mod:`cardiobench.tasks.ctrate.format` for the layout itself.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pandas as pd

from ...data.problems import Problem
from ...data.textfile import duplicated, text_stream
from ...errors import CardiobenchError, DataError

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


def metadata_file(volume_name: str) -> str:
    """The metadata CSV (relative to the root) that holds a volume's spacing and rescale."""
    return METADATA["valid" if str(volume_name).startswith("valid_") else "train"]


def mask_path(root: str | os.PathLike, volume_name: str) -> Path:
    """Where the organ mask of a volume is expected: ``<root>/masks/<VolumeName>``."""
    return Path(root) / MASKS / volume_name


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
