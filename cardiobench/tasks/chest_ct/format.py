"""Format ``ct_echo``: chest CT volumes with labels from the paired echocardiogram (LVEF) and aortic stenosis.

No public release pairs chest CT with echo, so this layout is ours (documented in README.md beside this module)::

    <root>/labels.csv      patient_id, image, lvef, aortic_stenosis, split[, sex, agatston]
    <root>/images/*.nii.gz  (or .nii) chest CT in Hounsfield units, any affine/orientation

``image`` is a path relative to the root; ``lvef`` percent (0-100) from the paired echo;
``aortic_stenosis`` 0/1; ``split`` train/val/test. Voxels may be float or integers with
scl_slope/scl_inter (e.g. uint16 storing HU + 1024): nibabel applies the scaling. A refused row is
named by its patient id and its line number (the header is line 1).

Preprocessing is Merlin's (Blankemeier et al. 2024) with MONAI transforms: orientation RAS,
spacing 1.5 x 1.5 x 3 mm (bilinear), HU [-1000, 1000] -> [0, 1] clipped, pad then centre-crop to
224 x 224 x 160; the ``smoke`` profile uses coarser spacing and a smaller crop. The result is
stored once in the decode-once cache as float16.
"""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ...data import nifti
from ...data.format import module_format
from ...data.nifti import FileProblem
from ...data.problems import Problem, split_problems
from ...data.textfile import duplicated, text_stream
from ...data.twins import map_jobs, twin_folder
from ...errors import DataError

NAME = "ct_echo"
TWIN_VERSION = 2  # bump when the phantom changes: it is part of the twin's cache key
LABELS = "labels.csv"
IMAGES = "images"
REQUIRED = ["patient_id", "image", "lvef", "aortic_stenosis", "split"]
SPLITS = {"train": "TRAIN", "val": "VAL", "test": "TEST"}
COLUMNS = ["sample_id", "patient_id", "split", "path", "image", "lvef", "aortic_stenosis", "sex", "agatston", "line"]
# A chest CT in HU holds air/lung (<= -500 HU) and soft tissue or bone (>= 0 HU); values outside
# [-3100, 32767] exist on no scanner (the -3024 outside-FOV fill is the lowest in use).
HU_AIR_BELOW, HU_TISSUE_ABOVE, HU_RANGE = -500.0, 0.0, (-3100.0, 32767.0)
# Voxel spacing per axis, in mm, of a chest CT: outside the error range the volume cannot be resampled
# into a usable crop (0.001 mm voxels make a sub-millimetre scan, 50 mm ones a grid of billions of voxels
# at 1.5 mm), so it is refused; outside the warning range it is implausible for a CT scanner but processed.
# A field of view (voxels x spacing) over FOV_MAX_MM on an axis is refused for the same reason.
SPACING_MM = {"error": (0.05, 20.0), "warning": (0.2, 10.0)}
FOV_MAX_MM = 1000.0


# ----------------------------------------------------------------------------- labels.csv


def normalize_id(text: str) -> str:
    """Patient ids as users write them (spaces, quotes) -> as labels.csv has them."""
    return str(text).strip().strip('"').strip("'")


def _sample_id(image: str) -> str:
    name = Path(image).name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def read_labels(root: str | os.PathLike) -> pd.DataFrame:
    """labels.csv as strings with its line numbers; DataError naming the file when unreadable or
    without the required columns."""
    path = Path(root) / LABELS
    if not Path(root).is_dir():
        raise DataError(f"{root}: data folder not found")
    if not path.is_file():
        raise DataError(f"{path}: missing (a ct_echo folder holds labels.csv with columns "
                        f"{', '.join(REQUIRED)} and the volumes under images/)")
    stream = text_stream(path)  # DataError naming the file and its encoding when it is not text
    header = [c.strip() for c in next(csv.reader(stream), [])]
    stream.seek(0)
    if duplicated(header):
        raise DataError(f"{path}: column(s) {', '.join(duplicated(header))} appear more than once in the header; "
                        "which one holds the value is ambiguous")
    try:
        df = pd.read_csv(stream, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(f"{path}: lacks column(s) {', '.join(missing)} (found {', '.join(df.columns)})")
    return df.assign(line=np.arange(len(df)) + 2)  # the header is line 1


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _row_problems(r: Mapping[str, Any]) -> list[str]:
    """What is wrong with one labels row's values (empty: nothing)."""
    out = []
    if not r["patient_id"]:
        out.append("empty patient_id")
    lvef = _number(r["lvef"])
    if lvef is None:
        out.append(f"lvef {r['lvef']!r} is not a number")
    elif not 0 <= lvef <= 100:
        out.append(f"lvef {lvef:g} outside 0-100 (percent)")
    if str(r["aortic_stenosis"]).strip() not in ("0", "1", "0.0", "1.0"):
        out.append(f"aortic_stenosis {r['aortic_stenosis']!r} is not 0 or 1")
    if str(r["split"]).strip().lower() not in SPLITS:
        out.append(f"split {r['split']!r} is not one of {', '.join(SPLITS)}")
    if not r["image"]:
        out.append("empty image path")
    return out


def index(root: str | os.PathLike) -> tuple[pd.DataFrame, list[Problem]]:
    """One row per usable volume of labels.csv (no decoding); every refused row is a Problem naming
    its patient and line. A patient listed in two splits is refused in all its rows (leakage)."""
    root = Path(root)
    df = read_labels(root)
    problems: list[Problem] = []
    rows = []
    df["patient_id"] = df["patient_id"].map(normalize_id)
    splits = df.groupby("patient_id")["split"].agg(lambda s: sorted({x.strip().lower() for x in s}))
    leaked = {p for p, s in splits.items() if p and len(s) > 1}
    for p in sorted(leaked):
        lines = df.loc[df.patient_id == p, "line"].tolist()
        problems.append(Problem(LABELS, f"patient {p} is in several splits ({', '.join(splits[p])}; lines "
                                        f"{', '.join(map(str, lines))}): all its rows skipped", sample=p))
    seen: dict[str, int] = {}
    for r in df.to_dict("records"):
        where = f"line {r['line']} (patient {r['patient_id'] or '?'})"
        if r["patient_id"] in leaked:
            continue
        bad = _row_problems(r)
        if bad:
            problems.append(Problem(LABELS, f"{where}: {'; '.join(bad)}; row skipped", sample=r["patient_id"] or None))
            continue
        path = root / r["image"]
        sid = _sample_id(r["image"])
        if sid in seen:
            problems.append(Problem(LABELS, f"{where}: image {r['image']} already listed on line {seen[sid]}; "
                                            "row skipped", sample=sid))
            continue
        if not path.is_file():
            problems.append(Problem(r["image"], f"image missing ({where} of {LABELS}); row skipped", sample=sid))
            continue
        seen[sid] = r["line"]
        rows.append(dict(sample_id=sid, patient_id=r["patient_id"], split=SPLITS[r["split"].strip().lower()],
                         path=os.path.abspath(path), image=r["image"], lvef=float(r["lvef"]),
                         aortic_stenosis=int(float(r["aortic_stenosis"])), sex=r.get("sex") or None,
                         agatston=_number(r.get("agatston", "")), line=int(r["line"])))
    return pd.DataFrame(rows, columns=COLUMNS), problems


# ----------------------------------------------------------------------------- volumes


def read_volume(path: str | os.PathLike, root: str | os.PathLike | None = None) -> nifti.Volume:
    """One chest CT in HU (float32, after scl_slope/scl_inter) with the integrity checks (a usable
    direction matrix among them), and plausibility checks of its voxel spacing, field of view and HU
    range; raises :class:`FileProblem` naming the file. Implausible but usable values are ``notes``."""
    vol = nifti.load(path, root)
    rel = nifti.rel_path(path, root)
    spacing = tuple(float(z) for z in np.linalg.norm(vol.affine[:3, :3], axis=0))  # what resampling uses
    for severity, why in geometry_problems(spacing, vol.data.shape, ("affine axis 0", "affine axis 1",
                                                                      "affine axis 2")):
        if severity == "error":
            raise FileProblem(rel, why)
        vol.notes.append(why)
    problem = hu_problem(vol.data)
    if problem:
        raise FileProblem(rel, problem)
    return vol


def _outside(value: float, bounds: tuple[float, float]) -> bool:
    return not bounds[0] <= value <= bounds[1]


def geometry_problems(spacing: tuple[float, ...], shape: tuple[int, ...] | None,
                      names: tuple[str, str, str]) -> list[tuple[str, str]]:
    """("error" | "warning", why) for each axis whose voxel spacing (mm) or field of view is not a chest
    CT's (see :data:`SPACING_MM`, :data:`FOV_MAX_MM`); ``names`` say where each axis's spacing is written
    (a header field, a CSV column). ``shape`` None: the spacing alone is checked."""
    out = []
    for k, (s, name) in enumerate(zip(spacing, names)):
        for severity in ("error", "warning"):
            lo, hi = SPACING_MM[severity]
            if _outside(s, (lo, hi)):
                out.append((severity, f"{name}: voxel spacing {s:g} mm is outside {lo:g}-{hi:g} mm"
                                      + (", not a CT voxel size" if severity == "error" else ", implausible for CT")))
                break
        fov = s * int(shape[k]) if shape is not None else 0.0
        if fov > FOV_MAX_MM:
            out.append(("error", f"{name}: field of view {int(shape[k])} voxels x {s:g} mm = {fov:g} mm is over "
                                 f"{FOV_MAX_MM:g} mm: no chest CT is that large (spacing wrong?)"))
    return sorted(out, key=lambda p: p[0] != "error")  # errors first


def hu_problem(hu: np.ndarray) -> str | None:
    """Why these voxels are not a chest CT in Hounsfield units (None when they are plausible)."""
    lo, hi = float(hu.min()), float(hu.max())
    if lo < HU_RANGE[0] or hi > HU_RANGE[1]:
        return (f"HU range [{lo:g}, {hi:g}] is implausible for CT (expected within [{HU_RANGE[0]:g}, "
                f"{HU_RANGE[1]:g}]); wrong scl_slope/scl_inter?")
    p_lo, p_hi = np.percentile(hu.ravel()[:: max(1, hu.size // 200_000)], [0.5, 99.5])  # a subsample is enough
    if p_lo > HU_AIR_BELOW:
        return (f"no air or lung: the 0.5th percentile is {p_lo:g} HU (> {HU_AIR_BELOW:g}); values not in HU? "
                "(uint16 stored as HU + 1024 needs scl_inter = -1024)")
    if p_hi < HU_TISSUE_ABOVE:
        return f"no soft tissue or bone: the 99.5th percentile is {p_hi:g} HU (< {HU_TISSUE_ABOVE:g})"
    return None


def split_sources(root: str | os.PathLike) -> dict[str, str]:
    """Where each split's rows come from (relative to ``root``): the split column of labels.csv."""
    return {k: f"{LABELS} (column split)" for k in SPLITS.values()}


def _check_volume(path: str, root: Path) -> list[Problem]:
    """One volume through :func:`read_volume`: its refusal, or its notes as warnings."""
    try:
        vol = read_volume(path, root)
    except FileProblem as exc:
        return [Problem(exc.file, exc.problem)]
    rel = nifti.rel_path(path, root)
    return [Problem(rel, note, severity="warning") for note in vol.notes]


def verify(root: str | os.PathLike, decode: bool = True, progress: bool = True, workers: int = 2) -> list[Problem]:
    """Every problem of a ct_echo folder: labels.csv rows (values, splits, leakage, missing images), a
    split without rows and, with ``decode``, each volume through the checks its preprocessing makes
    (truncated, not NIfTI, 2D, NaN voxels, a degenerate direction matrix, implausible spacing, field of
    view or HU range)."""
    root = Path(root)
    try:
        samples, problems = index(root)
    except DataError as exc:
        return [Problem(LABELS, str(exc).split(": ", 1)[-1])]
    problems += split_problems(list(samples.split), split_sources(root), "volumes", problems)
    if not decode:
        return problems

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, workers)) as pool:
        found = list(tqdm(pool.map(lambda p: _check_volume(p, root), samples.path), total=len(samples),
                          desc="verify ct_echo volumes", unit="volume", disable=not progress))
    return problems + [p for ps in found for p in ps]


# ----------------------------------------------------------------------------- preprocessing (Merlin)

PAPER_IMAGE = {"spacing": [1.5, 1.5, 3.0], "hu_window": [-1000.0, 1000.0], "shape": [224, 224, 160],
               "dtype": "float16"}


def preprocess_config(image: Mapping[str, Any] | int) -> dict:
    """What a cached volume depends on: target spacing (mm), HU window, output shape and dtype."""
    if isinstance(image, int):  # `data cache --size N`: an N^3 crop at the paper's spacing
        image = {**PAPER_IMAGE, "shape": [image, image, image]}
    c = {**PAPER_IMAGE, **{k: image[k] for k in image}}
    return {"spacing": [float(x) for x in c["spacing"]], "hu_window": [float(x) for x in c["hu_window"]],
            "shape": [int(x) for x in c["shape"]], "dtype": str(c["dtype"]), "orientation": "RAS",
            "pipeline": "merlin-v1"}


def merlin_transforms(config: Mapping[str, Any]):
    """Merlin's array transforms (after loading): RAS, resample, HU window to [0, 1], pad + centre crop."""
    from monai.transforms import CenterSpatialCrop, Compose, Orientation, ScaleIntensityRange, Spacing, SpatialPad

    lo, hi = config["hu_window"]
    return Compose([Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))), Spacing(pixdim=tuple(config["spacing"]), mode="bilinear"),
                    ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True),
                    SpatialPad(spatial_size=tuple(config["shape"])), CenterSpatialCrop(roi_size=tuple(config["shape"]))])


def preprocess(path: str | os.PathLike, config: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict]:
    """One volume through the Merlin pipeline: ``{"image": (X, Y, Z) float16 in [0, 1]}`` plus metadata."""
    import torch
    from monai.data import MetaTensor

    vol = read_volume(path)
    x = MetaTensor(torch.from_numpy(np.ascontiguousarray(vol.data))[None], affine=torch.as_tensor(vol.affine))
    out = merlin_transforms(config)(x)
    image = np.asarray(out.array if hasattr(out, "array") else out)[0].astype(config["dtype"])
    return {"image": image}, {"spacing": list(vol.zooms), "shape": list(vol.data.shape),
                              "affine": np.round(vol.affine, 6).tolist()}


# ----------------------------------------------------------------------------- the twin


def _twin_volume(args: tuple[int, np.random.SeedSequence, str, str, str]) -> dict:
    from ...data.twins import ct_phantom

    number, seq, folder, fov, split = args
    rng = np.random.default_rng(seq)
    hu, affine, measured = ct_phantom.patient(rng, fov=fov)
    pid = f"CT{number:04d}"
    # the stored types a user meets: int16 and uint16 as HU + 1024 (scl_inter), float32, .nii and .nii.gz;
    # the float volumes hold whole HU (as converted from DICOM's integers) and uncompressed .nii is one
    # volume in eight, both because noisy float or raw voxels would triple the twin's size on disk
    kind = number % 8
    zooms = tuple(float(z) for z in np.linalg.norm(affine[:3, :3], axis=0))
    if kind in (1, 5):
        name, data, si = f"{pid}.nii.gz", np.clip(np.round(hu + 1024), 0, 65535).astype(np.uint16), (1.0, -1024.0)
    elif kind in (2, 6):
        name, data, si = f"{pid}.nii.gz", np.round(hu).astype(np.float32), None
    elif kind == 3:
        name, data, si = f"{pid}.nii", np.clip(np.round(hu), -32768, 32767).astype(np.int16), (1.0, 0.0)
    else:
        name, data, si = f"{pid}.nii.gz", np.clip(np.round(hu), -32768, 32767).astype(np.int16), (1.0, 0.0)
    nifti.write(Path(folder) / IMAGES / name, data, affine, zooms, slope_inter=si)
    return dict(patient_id=pid, image=f"{IMAGES}/{name}", lvef=round(float(measured["lvef"]), 2),
                aortic_stenosis=int(measured["aortic_stenosis"]), split=split, sex=measured["sex"],
                agatston=round(float(measured["agatston"]), 1))


def twin_splits(n: int) -> list[str]:
    """train / val / test for n patients: 60 / 15 / 25 %, interleaved so each split spans the cohort."""
    pattern = ["train", "test", "train", "val", "train", "train", "test", "train", "train", "val", "train", "train",
               "test", "train", "val", "train", "train", "test", "train", "test"]
    return [pattern[i % len(pattern)] for i in range(n)]


def synthesize(out: str | os.PathLike, n: int = 120, seed: int = 0, workers: int = 2, progress: bool = True,
               fov: str = "cardiac") -> Path:
    """Write a ct_echo twin of ``n`` phantom chest CTs to ``out`` (atomically): labels measured from
    each phantom (LVEF from its ED/ES geometry, aortic stenosis from the valve calcium in its voxels);
    deterministic for ``(n, seed)`` whatever ``workers``. ``fov``: ``cardiac`` (a heart-centred
    reconstruction, the CPU smoke size) or ``chest`` (the full chest, the paper size)."""
    with twin_folder(out, n) as tmp:
        (tmp / IMAGES).mkdir()
        jobs = [(i + 1, s, str(tmp), fov, split)
                for i, (s, split) in enumerate(zip(np.random.SeedSequence(seed).spawn(n), twin_splits(n)))]
        rows = map_jobs(_twin_volume, jobs, workers, "synthesize chest-CT twin", "volume", progress)
        pd.DataFrame(rows, columns=[*REQUIRED, "sex", "agatston"]).to_csv(tmp / LABELS, index=False)
    return out


FORMAT = module_format(
    sys.modules[__name__], index_files=(LABELS,),
    description="chest CT with echo labels (ours): labels.csv (patient_id, image, lvef, aortic_stenosis, split) "
                "+ images/*.nii[.gz] in HU",
    extras=("read_labels", "read_volume", "merlin_transforms"),
    default_twin_n=120)
