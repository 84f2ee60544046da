"""Reading NIfTI volumes with nnU-Net-style integrity checks (shared by the ACDC and chest-CT formats).

A problem is a :class:`FileProblem`: a DataError that keeps the file (relative to the data root) and
the problem apart, so ``data verify`` can print one line per file. Spacing comes from the header as
stored: nibabel's loader silently turns a zero pixdim into 1, which would hide a broken header.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
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
    if not np.all(np.isfinite(affine)):
        raise FileProblem(rel, "affine has non-finite values (broken header)")
    if header_only:
        return Volume(np.empty(0), affine, zooms)  # type: ignore[arg-type]
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
    return Volume(data, affine, zooms)  # type: ignore[arg-type]


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
