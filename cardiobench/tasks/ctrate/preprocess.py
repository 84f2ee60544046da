"""fVLM's preprocessing of one CT-RATE volume (and its organ label map) into the decode-once cache.

HU from the metadata CSV's rescale (never the header), then MONAI: orientation RAS, resampling to
``spacing`` (bilinear for the image, nearest for the label map), HU window [-1150, 350] -> [0, 1],
pad + centre crop to ``shape`` (x, y, z). The paper's crop is 112 slices x 256 (antero-posterior) x
352 (left-right) voxels at 1 x 1 x 3 mm; stored here as (x, y, z) = (352, 256, 112), the network
reading it depth-first.

Besides the arrays, each entry records where each TotalSegmentator class lies relative to the crop
(``class_inside``, indexed by class id; fVLM counts an organ for a volume only when the whole organ is
in the crop): 0 absent from the scan, 1 whole inside the crop (no voxel lost, none on a face of the
crop or of the resampled scan), 2 inside the crop but cut by the scan's own field of view (on a face
of the resampled scan, not of the crop: the aorta, oesophagus and trachea of most chest CTs), 3 cut by
the crop. fVLM's released code only sees the crop and tests its six faces, so it counts codes 1 and 2;
the strict reading of the paper counts only 1. Which rule, and the organ groups (24 or 4 organs), stay
task settings and do not enter the cache (:func:`group_inside`).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...data.nifti import FileProblem
from .layout import METADATA, METADATA_COLUMNS, _read_csv, mask_path
from .volume import read_mask, read_volume

PAPER_IMAGE = {"spacing": [1.0, 1.0, 3.0], "hu_window": [-1150.0, 350.0], "shape": [352, 256, 112],
               "dtype": "float16", "masks": True}
N_CLASSES = 256  # uint8 label maps: TotalSegmentator v2 ids go to 117, v1 to 104


def preprocess_config(image: Mapping[str, Any] | int) -> dict:
    """What a cached volume depends on: spacing (mm), HU window, (x, y, z) shape, dtype, masks or not."""
    if isinstance(image, int):  # `data cache --size N`: an N^3 crop at the paper's spacing
        image = {**PAPER_IMAGE, "shape": [image, image, image]}
    c = {**PAPER_IMAGE, **{k: image[k] for k in image if k in PAPER_IMAGE}}
    return {"spacing": [float(x) for x in c["spacing"]], "hu_window": [float(x) for x in c["hu_window"]],
            "shape": [int(x) for x in c["shape"]], "dtype": str(c["dtype"]), "masks": bool(c["masks"]),
            "orientation": "RAS", "pipeline": "fvlm-v2"}


def dataset_root(path: str | os.PathLike) -> Path:
    """The release root of a volume file: ``<root>/<split>[_fixed]/<patient>/<scan>/<file>``."""
    return Path(path).parents[3]


@functools.lru_cache(maxsize=8)
def _metadata_table(csv: str, mtime_ns: int):
    root = Path(csv).parents[1]
    df, _ = _read_csv(root, os.path.relpath(csv, root), METADATA_COLUMNS)
    return df.drop_duplicates("VolumeName").set_index("VolumeName", drop=False)


def metadata_csv(path: str | os.PathLike) -> Path:
    """The metadata CSV that calibrates a volume file (train or validation, from its name)."""
    return dataset_root(path) / METADATA["valid" if Path(path).name.startswith("valid_") else "train"]


def metadata_row(path: str | os.PathLike) -> Mapping[str, Any]:
    """The metadata CSV row of a volume file; FileProblem when the CSV or the row is missing."""
    csv = metadata_csv(path)
    if not csv.is_file():
        raise FileProblem(str(csv), "missing: the metadata CSV gives every volume's spacing and rescale")
    table = _metadata_table(str(csv), csv.stat().st_mtime_ns)
    name = Path(path).name
    if name not in table.index:
        raise FileProblem(str(path), f"no row in {csv.name}: its spacing and rescale are unknown")
    return table.loc[name].to_dict()


def companions(path: str | os.PathLike) -> list[Path]:
    """The other files one volume's cache entry is decoded from: its metadata CSV and organ mask."""
    return [metadata_csv(path), mask_path(dataset_root(path), Path(path).name)]


def _faces(a: np.ndarray) -> np.ndarray:
    """The labels on the six faces of a 3D array."""
    return np.unique(np.concatenate([a[[0, -1]].ravel(), a[:, [0, -1]].ravel(), a[:, :, [0, -1]].ravel()]))


INSIDE, FOV_CUT, CROP_CUT = 1, 2, 3  # codes of class_inside (0: absent)


def classes_inside(full: np.ndarray, cropped: np.ndarray) -> np.ndarray:
    """uint8 [N_CLASSES]: per class id, 0 absent from ``full`` (the resampled scan), 1 kept whole by
    ``cropped`` (no voxel lost, none on a face of the crop or of the scan), 2 kept by the crop but on a
    face of the scan (cut by its field of view), 3 cut by the crop (voxels lost or on a crop face)."""
    before = np.bincount(full.ravel(), minlength=N_CLASSES)[:N_CLASSES]
    after = np.bincount(cropped.ravel(), minlength=N_CLASSES)[:N_CLASSES]
    code = np.where(before > 0, INSIDE, 0).astype(np.uint8)
    code[(before > 0) & np.isin(np.arange(N_CLASSES), _faces(full))] = FOV_CUT
    crop_cut = (before > 0) & (after != before)
    crop_cut[_faces(cropped)] = True
    code[crop_cut & (before > 0)] = CROP_CUT
    code[0] = 0  # background is no organ
    return code


def group_inside(class_inside: np.ndarray, class_ids, rule: str = "crop") -> bool:
    """Whether an organ group (its class ids) counts for a volume: at least one class present and every
    present class whole in the crop; ``rule="crop"`` (fVLM's released code) also accepts classes cut
    only by the scan's field of view, ``rule="strict"`` does not."""
    if rule not in ("crop", "strict"):
        raise ValueError(f"organ inside rule must be 'crop' or 'strict', not {rule!r}")
    codes = np.asarray(class_inside)[list(class_ids)]
    codes = codes[codes > 0]
    ok = (INSIDE,) if rule == "strict" else (INSIDE, FOV_CUT)
    return codes.size > 0 and bool(np.isin(codes, ok).all())


def _transforms(config: Mapping[str, Any], keys: list[str]):
    from monai.transforms import Compose, Orientationd, ScaleIntensityRanged, Spacingd

    lo, hi = config["hu_window"]
    modes = ["bilinear", "nearest"][: len(keys)]
    return Compose([Orientationd(keys=keys, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
                    Spacingd(keys=keys, pixdim=tuple(config["spacing"]), mode=modes),
                    ScaleIntensityRanged(keys="image", a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)])


def _pad_crop(config: Mapping[str, Any]):
    from monai.transforms import CenterSpatialCrop, Compose, SpatialPad

    return Compose([SpatialPad(spatial_size=tuple(config["shape"])), CenterSpatialCrop(roi_size=tuple(config["shape"]))])


def preprocess(path: str | os.PathLike, config: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict]:
    """One volume: ``{"image": (x, y, z) in [0, 1]}`` plus, with masks, ``"mask"`` (uint8 class ids,
    same grid) and ``"class_inside"`` (see the module docstring); metadata: original spacing, shape."""
    import torch
    from monai.data import MetaTensor

    path = Path(path)
    vol = read_volume(path, metadata_row(path))
    affine = torch.as_tensor(vol.affine)
    data = {"image": MetaTensor(torch.from_numpy(np.ascontiguousarray(vol.data))[None], affine=affine)}
    if config["masks"]:
        mask = read_mask(dataset_root(path), path.name, vol.data.shape).astype(np.uint8)
        data["mask"] = MetaTensor(torch.from_numpy(mask)[None], affine=affine)
    spaced = _transforms(config, list(data))(data)
    crop = _pad_crop(config)
    out = {"image": np.asarray(crop(spaced["image"]).array)[0].astype(config["dtype"])}
    if config["masks"]:
        full = np.rint(np.asarray(spaced["mask"].array)[0]).astype(np.uint8)
        cropped = np.rint(np.asarray(crop(spaced["mask"]).array)[0]).astype(np.uint8)
        out["mask"], out["class_inside"] = cropped, classes_inside(full, cropped)
    return out, {"spacing": list(vol.zooms), "shape": list(vol.data.shape)}
