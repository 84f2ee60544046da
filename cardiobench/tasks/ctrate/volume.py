"""One CT-RATE volume in HU and its organ mask (format ``ct_rate``).

The dataset's correction note: spacing and rescale come from the metadata CSV, never from the
NIfTI header (the first release had blank headers; the fixed one stores int16 with a header
scl_slope/scl_inter). So the stored voxel values are read unscaled and the CSV's slope and
intercept applied once (:class:`Calibration`); the voxel sizes come from the CSV and only the axis
directions and origin from the header.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...data.nifti import FileProblem, Volume, as_labels, direction_problem, rel_path, three_d
from ...errors import DataError
from ..chest_ct.format import geometry_problems
from .layout import _MASK_HINT, MASK_MAX, SPACING_KEYS, mask_path, metadata_file, volume_path


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

