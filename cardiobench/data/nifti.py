"""Reading NIfTI volumes with nnU-Net-style integrity checks (shared by the ACDC and chest-CT formats).

A problem is a :class:`FileProblem`: a DataError that keeps the file (relative to the data root) and
the problem apart, so ``data verify`` can print one line per file. Spacing comes from the header as
stored: nibabel's loader silently turns a zero pixdim into 1, which would hide a broken header.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError


def rel_path(path: str | os.PathLike, root: str | os.PathLike | None) -> str:
    """``path`` relative to ``root`` (posix) when it lies under it, else as given."""
    if root is not None:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
        if rel != ".." and not rel.startswith(".." + os.sep):
            return Path(rel).as_posix()
    return str(path)


def three_d(shape: tuple[int, ...], rel: str) -> tuple[int, ...]:
    """A volume's (X, Y, Z) shape (a trailing singleton 4th axis dropped); FileProblem if it is not 3D."""
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise FileProblem(rel, f"has shape {shape}, expected a 3D volume (X, Y, Z)")
    return shape


class FileProblem(DataError):
    """A DataError that keeps its file (relative) and its problem apart, for verify's report."""

    def __init__(self, file: str, problem: str):
        super().__init__(f"{file}: {problem}")
        self.file, self.problem = file, problem


@dataclass
class Volume:
    data: np.ndarray
    affine: np.ndarray
    zooms: tuple[float, float, float]
    notes: list[str] = field(default_factory=list)  # implausible but usable: verify prints them as warnings


# |det| of the unit direction columns: 1 for orthogonal axes, sin(angle) for two axes at ``angle`` with
# the third square to both. Below SINGULAR_DET the grid has collapsed (two axes within 30 degrees of each
# other, or all three in a plane): no orientation can be read from it, and MONAI's Orientation fails on the
# singular ones. Axes off square by more than SHEAR_TOLERANCE (the cosine between two of them) are a
# sheared grid, e.g. a gantry-tilted CT (up to about 30 degrees, |det| 0.87): resampled through the affine
# as stored, with a warning.
SINGULAR_DET = 0.5
SHEAR_TOLERANCE = 1e-3


def direction_problem(affine: np.ndarray) -> tuple[str, str] | None:
    """("error" | "warning", why) when the affine's direction block is unusable or sheared; None when the
    voxel axes are orthogonal. Checks finiteness, a zero (direction-less) column, collapse and shear."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        return "error", "affine has non-finite values (NaN or infinite: broken header)"
    rot = affine[:3, :3]
    norms = np.linalg.norm(rot, axis=0)
    zero = [k for k in range(3) if norms[k] <= 1e-9]
    if zero:
        return "error", (f"affine column {zero[0]} is zero: voxel axis {zero[0]} has no direction (degenerate "
                         "direction matrix)")
    unit = rot / norms
    det = abs(float(np.linalg.det(unit)))
    if det < SINGULAR_DET:
        return "error", (f"affine direction matrix is singular or nearly so (|det| {det:.3g} of the unit axes, "
                         f"orthogonal axes give 1): the voxel axes are not independent directions")
    gram = unit.T @ unit
    skew = float(np.max(np.abs(gram - np.eye(3))))
    if skew > SHEAR_TOLERANCE:
        angle = float(np.degrees(np.arcsin(min(1.0, skew))))
        return "warning", (f"affine axes are not orthogonal (sheared by up to {angle:.1f} degrees, e.g. a gantry "
                           "tilt): resampled through the affine as stored")
    return None


def _raw_header(path: Path):
    """The NIfTI-1/2 header exactly as stored (no fixes applied); raises on a non-NIfTI file."""
    import nibabel as nib
    from nibabel.openers import ImageOpener

    with ImageOpener(str(path)) as f:
        head = f.read(4)
        if len(head) < 4:
            raise ValueError("file too short for a NIfTI header")
        size = int.from_bytes(head, "little")
        if size not in (348, 540):
            size = int.from_bytes(head, "big")
        if size not in (348, 540):
            raise ValueError("no NIfTI header (sizeof_hdr is neither 348 nor 540)")
        f.seek(0)
        cls = nib.Nifti1Header if size == 348 else nib.Nifti2Header
        return cls.from_fileobj(f, check=False)


def load(path: str | os.PathLike, root=None, header_only: bool = False, integer: bool = False) -> Volume:
    """One 3D NIfTI volume with the integrity checks: a header as stored with positive spacing, a 3D
    shape, finite affine and voxels. Voxels are float32 after the header's scl_slope/scl_inter
    (``integer=True``: as stored, for label maps). Raises :class:`FileProblem` naming the file
    relative to ``root``."""
    import nibabel as nib

    path = Path(path)
    rel = rel_path(path, root)
    if not path.is_file():
        raise FileProblem(rel, "file not found")
    try:
        # The header as stored first: nibabel's loader silently turns a zero pixdim into 1.
        raw = _raw_header(path)
        stored = tuple(float(z) for z in raw["pixdim"][1:4])
        if not all(np.isfinite(z) and z > 0 for z in stored):
            raise FileProblem(rel, f"voxel spacing {tuple(round(z, 4) for z in stored)} mm in the header has a "
                                    "zero, negative or non-finite value (broken pixdim)")
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.shape)
        zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
        affine = np.asarray(img.affine, dtype=np.float64)
    except FileProblem:
        raise
    except Exception as exc:  # nibabel/gzip raise many types for non-NIfTI or damaged headers
        raise FileProblem(rel, f"not a readable NIfTI file ({type(exc).__name__}: {exc})") from None
    shape = three_d(shape, rel)
    direction = direction_problem(affine)
    if direction is not None and direction[0] == "error":
        raise FileProblem(rel, direction[1])
    notes = [direction[1]] if direction is not None else []
    if header_only:
        return Volume(np.empty(0), affine, zooms, notes)  # type: ignore[arg-type]
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # EOFError / zlib.error / OSError / ValueError for truncated or corrupt data
        raise FileProblem(rel, f"truncated or corrupt: cannot decode the voxel data ({type(exc).__name__}: "
                                f"{exc})") from None
    data = data.reshape(shape)
    if data.dtype.kind == "f":
        nan = int(np.isnan(data).sum())
        if nan:
            raise FileProblem(rel, f"contains {nan} NaN voxel(s)")
        if not np.all(np.isfinite(data)):
            raise FileProblem(rel, "contains infinite voxel values")
    if not integer:
        data = data.astype(np.float32, copy=False)
    return Volume(data, affine, zooms, notes)  # type: ignore[arg-type]


def _shown(values: np.ndarray, limit: int = 8) -> str:
    return ", ".join(f"{v:g}" for v in values[:limit].tolist()) + (" ..." if len(values) > limit else "")


def as_labels(data: np.ndarray, rel: str, high: int, meaning: str) -> np.ndarray:
    """A label map's voxels as uint8, converted exactly: whole numbers stored as floats (0.0, 1.0, ...)
    are labels like any others. FileProblem naming the file and example values when a value is not a
    whole number (an interpolated or probability map) or lies outside 0..``high`` (``meaning`` says
    what the labels are)."""
    values = np.unique(data)
    if data.dtype.kind == "f":
        fractional = values[values != np.round(values)]
        if fractional.size:
            raise FileProblem(rel, f"non-integral label value(s) {_shown(fractional)} (e.g. {fractional[0]:g}): a "
                                   "label map holds whole numbers (an interpolated or probability map?)")
    outside = values[(values < 0) | (values > high)]
    if outside.size:
        raise FileProblem(rel, f"label value(s) {_shown(outside)} outside 0-{high} ({meaning})")
    return data.astype(np.uint8)


def write(path: Path, data: np.ndarray, affine: np.ndarray, zooms: tuple[float, ...],
          slope_inter: tuple[float, float] | None = None) -> None:
    """Write a NIfTI-1 file reproducibly (``.nii.gz``: gzip with mtime 0 and no file name; ``.nii``:
    uncompressed). ``slope_inter`` sets scl_slope/scl_inter: stored value * slope + inter = real value."""
    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms(zooms)
    img.header.set_xyzt_units("mm", "msec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    if slope_inter is not None:
        img.header.set_slope_inter(*slope_inter)
    raw = img.to_bytes()
    path.write_bytes(gzip.compress(raw, compresslevel=1, mtime=0) if path.name.endswith(".gz") else raw)
