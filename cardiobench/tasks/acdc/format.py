"""ACDC on-disk format (Automated Cardiac Diagnosis Challenge; Bernard et al., IEEE TMI 2018) and its twin.

Released layout (also accepted one level down, under ``database/``)::

    training/patient001/ ... training/patient100/
    testing/patient101/  ... testing/patient150/
        Info.cfg                      ED: 1 / ES: 12 / Group: DCM / Height: 184.0 / NbFrame: 30 / Weight: 95.0
        patient001_4d.nii.gz          the whole cine stack (X, Y, Z, T)
        patient001_frame01.nii.gz     the end-diastolic frame (number from Info.cfg, 1-based, 2 digits)
        patient001_frame01_gt.nii.gz  its labels: 0 background, 1 RV cavity, 2 myocardium, 3 LV cavity
        patient001_frame12.nii.gz     the end-systolic frame, and its _gt
    MANDATORY_CITATION.md             (at any level; ignored)

One sample is one (patient, phase): ``patient001_ED`` and ``patient001_ES``. Every training/
patient is split TRAIN and every testing/ one TEST; :func:`split_training` draws the validation
patients. Problems name their file relative to the dataset folder.
"""
from __future__ import annotations

import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ...cpu_kernels import ipp_off
from ...data import nifti
from ...data.format import module_format
from ...data.nifti import FileProblem as _FileProblem
from ...data.nifti import Volume as _Volume
from ...data.nifti import rel_path as _rel
from ...data.problems import Problem, split_problems
from ...data.textfile import read_text
from ...data.twins import map_jobs, twin_folder
from ...errors import DataError
from . import twin as acdc_phantom

NAME = "acdc"
TWIN_VERSION = 2  # bump when the phantom changes: it is part of the twin's cache key (2: portable math, same bytes on every CPU)
SUBSETS = {"training": "TRAIN", "testing": "TEST"}
PHASES = ("ED", "ES")
LABELS = acdc_phantom.LABELS
GROUPS = acdc_phantom.GROUPS  # ACDC's five diagnostic groups (the twin draws from the same list)
N_LABELS = 4
COLUMNS = ["sample_id", "patient_id", "split", "subset", "phase", "frame", "group", "height", "weight", "nb_frame",
           "path", "gt_path"]
CITATION = "ACDC: Bernard et al., IEEE TMI 2018"
_PATIENT = re.compile(r"^patient\d+$")
_AFFINE_ATOL = 1e-4
# Info.cfg values a patient can have (inclusive); outside them the value is kept with a warning naming the
# key (Height in cm and Weight in kg: 1800 is a height in mm, 0 a blank; neither is used by the tasks)
PLAUSIBLE = {"height": ("Height", 100.0, 250.0, "cm"), "weight": ("Weight", 20.0, 300.0, "kg")}


# ----------------------------------------------------------------------------- paths and Info.cfg


def data_folder(root: str | os.PathLike) -> Path:
    """The folder that holds training/ and testing/: ``root`` itself or ``root/database``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    for base in (root, root / "database"):
        if any((base / s).is_dir() for s in SUBSETS):
            return base
    raise DataError(f"{root}: no training/ or testing/ folder (an ACDC folder holds training/patientNNN/ and "
                    "testing/patientNNN/, possibly under database/)")


def read_info(path: Path) -> dict[str, str]:
    """Info.cfg as {lower-case key: value}; lines without ``key: value`` are ignored. A byte-order
    mark (UTF-8 or UTF-16) is honoured; DataError naming the file when it is not text."""
    out = {}
    for line in read_text(path).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out[key.strip().lower()] = value.strip()
    return out


def _int(text: str | None) -> int | None:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return int(v) if v.is_integer() else None


def _float(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _nifti(folder: Path, stem: str) -> Path:
    """``stem.nii.gz``, or ``stem.nii`` where only that exists."""
    gz = folder / f"{stem}.nii.gz"
    plain = folder / f"{stem}.nii"
    return plain if not gz.exists() and plain.exists() else gz


def companions(image_path: str | os.PathLike) -> list[Path]:
    """The files besides a frame image that its cached sample is decoded from: its ``_gt``."""
    return [gt_path_for(image_path)]


def gt_path_for(image_path: str | os.PathLike) -> Path:
    """The ground-truth file beside a frame image, found as :func:`index` finds it (``.nii.gz``, or
    ``.nii`` where only that exists, whatever the image's own extension): ``..._frameXX.nii.gz`` ->
    ``..._frameXX_gt.nii.gz``. The cache and ``data verify`` must read the same file."""
    p = Path(image_path)
    for ext in (".nii.gz", ".nii"):
        if p.name.endswith(ext):
            return _nifti(p.parent, p.name[: -len(ext)] + "_gt")
    return p.with_name(p.name + "_gt")


def normalize_id(text: str) -> str:
    """``patient1_ed``, ``Patient001_ED.nii.gz`` and ``patient001_ED`` -> ``patient001_ED``."""
    t = str(text).strip()
    for ext in (".nii.gz", ".nii"):
        if t.lower().endswith(ext):
            t = t[: -len(ext)]
    m = re.fullmatch(r"patient0*(\d+)[_\-\s]*(ed|es)", t, flags=re.IGNORECASE)
    if m:
        return f"patient{int(m.group(1)):03d}_{m.group(2).upper()}"
    m = re.fullmatch(r"patient0*(\d+)", t, flags=re.IGNORECASE)
    return f"patient{int(m.group(1)):03d}" if m else t


# ----------------------------------------------------------------------------- index


def index(root: str | os.PathLike) -> tuple[pd.DataFrame, list[Problem]]:
    """One row per usable (patient, phase); reads Info.cfg and checks files exist (no decoding).

    A problem with one phase (no ``ES:`` line, a frame beyond NbFrame, a missing frame or _gt
    file) drops that phase's row only; a missing or unreadable Info.cfg drops the patient.
    """
    root = Path(root)
    base = data_folder(root)
    rows: list[dict] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for subset, split in SUBSETS.items():
        folder = base / subset
        if not folder.is_dir():
            continue
        for pdir in sorted(p for p in folder.iterdir() if p.is_dir() and _PATIENT.match(p.name)):
            pid = pdir.name
            cfg = pdir / "Info.cfg"
            rel_cfg = _rel(cfg, root)
            if pid in seen:
                problems.append(Problem(_rel(pdir, root), f"{pid} also under {seen[pid]}; this copy skipped", sample=pid))
                continue
            seen[pid] = _rel(pdir, root)
            if not cfg.is_file():
                problems.append(Problem(rel_cfg, f"Info.cfg missing; {pid} skipped (ED and ES)", sample=pid))
                continue
            try:
                info = read_info(cfg)
            except DataError as exc:
                problems.append(Problem(rel_cfg, f"{str(exc).split(': ', 1)[-1]}; {pid} skipped", sample=pid))
                continue
            nb_frame = _int(info.get("nbframe"))
            if nb_frame is None or nb_frame < 1:
                problems.append(Problem(rel_cfg, f"no valid 'NbFrame:' line (found {info.get('nbframe')!r}); frame "
                                                 "numbers not checked against it", severity="warning", sample=pid))
                nb_frame = None
            group = info.get("group") or None
            if group is None:
                problems.append(Problem(rel_cfg, "no 'Group:' line; group unknown", severity="warning", sample=pid))
            elif group not in GROUPS:
                problems.append(Problem(rel_cfg, f"Group {group!r} is not one of ACDC's {', '.join(GROUPS)}; kept as "
                                                 "written (per-group summaries will show it apart)",
                                        severity="warning", sample=pid))
            problems += _info_warnings(info, rel_cfg, pid)
            four_d = _nifti(pdir, f"{pid}_4d")
            if not four_d.is_file():
                problems.append(Problem(_rel(four_d, root), "4D cine file missing (not needed for the ED/ES samples)",
                                        severity="warning", sample=pid))
            for phase in PHASES:
                sid = f"{pid}_{phase}"
                raw = info.get(phase.lower())
                if raw is None:
                    problems.append(Problem(rel_cfg, f"no '{phase}:' line; {sid} skipped", sample=sid))
                    continue
                frame = _int(raw)
                if frame is None:
                    problems.append(Problem(rel_cfg, f"{phase} is {raw!r}, not a frame number; {sid} skipped", sample=sid))
                    continue
                if frame < 1 or (nb_frame is not None and frame > nb_frame):
                    where = f"beyond NbFrame {nb_frame}" if frame >= 1 else "below 1 (frames are numbered from 1)"
                    problems.append(Problem(rel_cfg, f"{phase} frame {frame} is {where}; {sid} skipped", sample=sid))
                    continue
                image = _nifti(pdir, f"{pid}_frame{frame:02d}")
                gt = _nifti(pdir, f"{pid}_frame{frame:02d}_gt")
                missing = False
                for p, what in ((image, "image"), (gt, "ground truth")):
                    if not p.is_file():
                        problems.append(Problem(_rel(p, root), f"{phase} frame {what} missing (Info.cfg says {phase}: "
                                                               f"{frame}); {sid} skipped", sample=sid))
                        missing = True
                if missing:
                    continue
                rows.append(dict(sample_id=sid, patient_id=pid, split=split, subset=subset, phase=phase, frame=frame,
                                 group=group, height=_float(info.get("height")), weight=_float(info.get("weight")),
                                 nb_frame=nb_frame, path=os.path.abspath(image), gt_path=os.path.abspath(gt)))
    samples = pd.DataFrame(rows, columns=COLUMNS)
    samples["frame"] = samples["frame"].astype(int)
    samples["nb_frame"] = samples["nb_frame"].astype("Int64")
    samples["height"] = samples["height"].astype(float)
    samples["weight"] = samples["weight"].astype(float)
    return samples, problems


def _info_warnings(info: dict[str, str], rel_cfg: str, pid: str) -> list[Problem]:
    """Implausible but harmless Info.cfg values: Height and Weight outside a patient's range, ED and ES
    naming the same frame."""
    out = []
    for key, (name, lo, hi, unit) in PLAUSIBLE.items():
        if key not in info:
            continue
        v = _float(info[key])
        if not lo <= v <= hi:
            out.append(Problem(rel_cfg, f"{name} {info[key]!r} is outside the plausible {lo:g}-{hi:g} {unit}; kept",
                               severity="warning", sample=pid))
    ed, es = _int(info.get("ed")), _int(info.get("es"))
    if ed is not None and ed == es:
        out.append(Problem(rel_cfg, f"ED and ES are both frame {ed}: the two phases are one image (an EF of 0)",
                           severity="warning", sample=pid))
    return out


def split_sources(root: str | os.PathLike) -> dict[str, str]:
    """Where each split's patients come from (VAL patients are drawn from training/ by a run)."""
    base = data_folder(root)
    training, testing = _rel(base / "training", root) + "/", _rel(base / "testing", root) + "/"
    return {"TRAIN": training, "VAL": f"{training} (VAL patients are drawn from it)", "TEST": testing}


def split_training(samples: pd.DataFrame, seed: int, val_fraction: float = 0.2) -> pd.Series:
    """TRAIN/VAL/TEST per row (aligned with ``samples.index``): TRAIN patients split into TRAIN and VAL.

    Patient-grouped (a patient's ED and ES rows share a split), stratified by ``group`` (each
    group gives its share of validation patients, remainders by largest fraction), deterministic
    for ``seed``. At least one validation patient whenever there are two training patients.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out = samples["split"].astype(str).copy()
    train = samples[out == "TRAIN"]
    patients = train.groupby("patient_id", sort=True)["group"].first().fillna("?").astype(str)
    n = len(patients)
    total = int(round(val_fraction * n))
    if val_fraction > 0 and n >= 2:
        total = max(total, 1)
    total = min(total, n - 1) if n else 0
    rng = np.random.default_rng(seed)
    groups = sorted(patients.unique())
    by_group = {g: sorted(patients.index[patients == g]) for g in groups}
    quota = {g: val_fraction * len(by_group[g]) for g in groups}
    take = {g: int(np.floor(quota[g])) for g in groups}
    # Remainders: the largest fractional parts first, ties in a seeded random order.
    tie = rng.permutation(len(groups))
    order = sorted(range(len(groups)), key=lambda i: (-(quota[groups[i]] - take[groups[i]]), tie[i]))
    left = total - sum(take.values())
    for i in order:
        if left <= 0:
            break
        g = groups[i]
        if take[g] < len(by_group[g]):
            take[g] += 1
            left -= 1
    while sum(take.values()) > total:  # only when rounding went over (tiny sets)
        g = max(groups, key=lambda g: take[g])
        take[g] -= 1
    val: set[str] = set()
    for g in groups:
        members = by_group[g]
        val.update(members[i] for i in rng.permutation(len(members))[: take[g]])
    out.loc[train.index[train.patient_id.isin(val)]] = "VAL"
    out.name = "split"
    return out


# ----------------------------------------------------------------------------- reading volumes


@dataclass
class Case:
    """One frame: the image as stored (X, Y, Z) and its labels, with the ground truth's geometry."""

    image: np.ndarray  # float32 (X, Y, Z)
    label: np.ndarray | None  # uint8 (X, Y, Z), 0..3
    spacing: tuple[float, float, float]  # mm, from the ground truth's header (the image's when no gt)
    affine: np.ndarray  # 4x4


def _load(path: str | os.PathLike, root=None, label: bool = False, header_only: bool = False) -> _Volume:
    """Load one 3D NIfTI volume with the integrity checks (and, for a label map, its values);
    raises :class:`_FileProblem`."""
    vol = nifti.load(path, root, header_only=header_only, integer=label)
    if label and not header_only:
        vol.data = nifti.as_labels(vol.data, _rel(path, root), N_LABELS - 1,
                                   "0 background, 1 RV cavity, 2 myocardium, 3 LV cavity")
    return vol


def _check_pair(image: _Volume, gt: _Volume, image_path, gt_path, root) -> None:
    """The ground truth must share the image's grid: shape, affine (atol 1e-4) and spacing."""
    rel_gt, name = _rel(gt_path, root), Path(image_path).name
    if image.data.shape != gt.data.shape:
        raise _FileProblem(rel_gt, f"shape {gt.data.shape} differs from its image {name} {image.data.shape}")
    if not np.allclose(image.affine, gt.affine, atol=_AFFINE_ATOL):
        diff = float(np.max(np.abs(image.affine - gt.affine)))
        raise _FileProblem(rel_gt, f"affine differs from its image {name}'s (largest difference {diff:.4g}); the "
                                   "labels are not on the image's grid")
    if not np.allclose(image.zooms, gt.zooms, atol=_AFFINE_ATOL):
        raise _FileProblem(rel_gt, f"voxel spacing {tuple(round(z, 4) for z in gt.zooms)} differs from its image "
                                   f"{name}'s {tuple(round(z, 4) for z in image.zooms)}")


def read_case(image_path: str | os.PathLike, gt_path: str | os.PathLike | None = None,
              root: str | os.PathLike | None = None) -> Case:
    """Read one frame (and its ground truth) with nnU-Net-style integrity checks.

    Raises :class:`DataError` whose message starts with the file (relative to ``root`` when given):
    unreadable, truncated or non-NIfTI file, zero spacing, NaN voxels, labels outside 0-3, or a
    ground truth whose shape, affine or spacing differs from the image's.
    """
    image = _load(image_path, root)
    if gt_path is None:
        return Case(image=image.data, label=None, spacing=image.zooms, affine=image.affine)
    gt = _load(gt_path, root, label=True)
    _check_pair(image, gt, image_path, gt_path, root)
    return Case(image=image.data, label=gt.data, spacing=gt.zooms, affine=gt.affine)


def read_mask(path: str | os.PathLike, like: Case, root: str | os.PathLike | None = None) -> np.ndarray:
    """An external prediction: a NIfTI label map on ``like``'s grid (shape, affine) with values 0-3; uint8."""
    m = _load(path, root, label=True)
    rel = _rel(path, root)
    if m.data.shape != like.image.shape:
        raise _FileProblem(rel, f"shape {m.data.shape} differs from the case's {like.image.shape}")
    if not np.allclose(m.affine, like.affine, atol=_AFFINE_ATOL):
        diff = float(np.max(np.abs(m.affine - like.affine)))
        raise _FileProblem(rel, f"affine differs from the case's (largest difference {diff:.4g})")
    return m.data


# ----------------------------------------------------------------------------- preprocessing


def preprocess_config(size: int) -> dict:
    """What a cached frame depends on besides its file: the intensity normalisation and the resize."""
    return {"reader": "nibabel", "clip_percentiles": [0.5, 99.5], "normalize": "zscore-volume", "size": int(size),
            "slice_axis": 2, "resize_image": "INTER_LINEAR, no IPP", "resize_label": "INTER_NEAREST"}


def prepare_image(image: np.ndarray, size: int, clip_percentiles=(0.5, 99.5)) -> np.ndarray:
    """An image volume (X, Y, Z) as the network sees it: clipped to its percentiles, z-scored per
    volume, each slice (3rd axis) resized in-plane to size x size (INTER_LINEAR): float32 (Z, S, S)."""
    import cv2

    img = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(img, list(clip_percentiles))
    img = np.clip(img, lo, hi)
    img = (img - img.mean()) / max(float(img.std()), 1e-6)
    # Intel IPP's float resize picks its code by processor (its SSE4.2 and AVX2 paths round
    # differently); OpenCV's own kernel gives the same bits on every x86-64 machine, so the cache does too.
    with ipp_off():
        return np.stack([cv2.resize(img[:, :, k], (size, size), interpolation=cv2.INTER_LINEAR)
                         for k in range(img.shape[2])]).astype(np.float32, copy=False)


def prepare_label(label: np.ndarray, size: int) -> np.ndarray:
    """A label volume (X, Y, Z) resized slice by slice to size x size (INTER_NEAREST): uint8 (Z, S, S)."""
    import cv2

    lab = np.asarray(label, dtype=np.uint8)
    return np.stack([cv2.resize(lab[:, :, k], (size, size), interpolation=cv2.INTER_NEAREST)
                     for k in range(lab.shape[2])])


def preprocess(path: str | os.PathLike, config: dict) -> tuple[dict[str, np.ndarray], dict]:
    """One ED/ES frame and its sibling ``_gt`` as ``{"image": float32 (Z, S, S), "label": uint8 (Z, S, S)}``.

    The image is clipped to its percentiles and z-scored per volume; every slice (3rd NIfTI axis)
    is resized in-plane to S x S. Metadata: original shape, spacing and affine (to map predictions
    back). The ``_gt`` file is the frame's cache companion: editing it refreshes the cached label.
    """
    path = Path(path)
    case = read_case(path, gt_path_for(path))
    size = int(config["size"])
    image = prepare_image(case.image, size, config.get("clip_percentiles", (0.5, 99.5)))
    label = prepare_label(case.label, size)
    meta = {"shape": [int(s) for s in case.image.shape], "spacing": [float(s) for s in case.spacing],
            "affine": np.asarray(case.affine, dtype=float).tolist()}
    return {"image": image, "label": label}, meta


# ----------------------------------------------------------------------------- verify


def _verify_patient(rows: list, root: Path) -> list[Problem]:
    """Decode one patient's ED/ES frames and ground truths; check the 4D header against NbFrame."""
    out: list[Problem] = []
    done: set[str] = set()
    for row in rows:
        if row.path in done:  # ED and ES naming the same frame
            continue
        done.add(row.path)
        vols = {}
        for key, p, label in (("image", row.path, False), ("gt", row.gt_path, True)):
            try:
                vols[key] = _load(p, root, label=label)
            except _FileProblem as exc:
                out.append(Problem(exc.file, exc.problem, sample=row.sample_id))
        if len(vols) == 2:
            try:
                _check_pair(vols["image"], vols["gt"], row.path, row.gt_path, root)
            except _FileProblem as exc:
                out.append(Problem(exc.file, exc.problem, sample=row.sample_id))
        out += _content_warnings(vols, row, root)
    row = rows[0]
    four_d = _nifti(Path(row.path).parent, f"{row.patient_id}_4d")
    if four_d.is_file():
        import nibabel as nib

        rel = _rel(four_d, root)
        try:
            shape = tuple(int(s) for s in nib.load(str(four_d)).shape)
        except Exception as exc:
            out.append(Problem(rel, f"not a readable NIfTI file ({type(exc).__name__}: {exc})", sample=row.patient_id))
            return out
        if len(shape) != 4:
            out.append(Problem(rel, f"has shape {shape}, expected a 4D cine (X, Y, Z, T)", sample=row.patient_id))
        elif not pd.isna(row.nb_frame) and shape[3] != int(row.nb_frame):
            out.append(Problem(rel, f"has {shape[3]} frames, Info.cfg says NbFrame: {int(row.nb_frame)}",
                               sample=row.patient_id))
        else:
            frame_shape = vols["image"].data.shape if "image" in vols else None
            if frame_shape is not None and shape[:3] != frame_shape:
                out.append(Problem(rel, f"volume shape {shape[:3]} differs from the frame files' {frame_shape}",
                                   severity="warning", sample=row.patient_id))
    return out


def _content_warnings(vols: dict[str, _Volume], row, root) -> list[Problem]:
    """A blank image and a label map without some structure: usable, but worth a look (an absent
    structure is an empty-structure case, which the metrics count apart)."""
    out = []
    image, gt = vols.get("image"), vols.get("gt")
    if image is not None and float(image.data.min()) == float(image.data.max()):
        out.append(Problem(_rel(row.path, root), f"every voxel is {float(image.data.min()):g} (a blank image)",
                           severity="warning", sample=row.sample_id))
    if gt is not None:
        present = set(np.unique(gt.data).tolist())
        absent = [f"{k} {LABELS[k]}" for k in range(1, N_LABELS) if k not in present]
        if absent:
            out.append(Problem(_rel(row.gt_path, root), f"no voxel of label(s) {', '.join(absent)}: an "
                                                        "empty-structure case (counted apart by the metrics)",
                               severity="warning", sample=row.sample_id))
    return out


def verify(root: str | os.PathLike, decode: bool = True, progress: bool = True, workers: int = 2) -> list[Problem]:
    """Check every patient once: Info.cfg and the files it names; with ``decode``, every ED/ES image
    and ground truth through the integrity checks of :func:`read_case`, and the 4D file's header."""
    root = Path(root)
    samples, problems = index(root)
    sources = {k: v for k, v in split_sources(root).items() if k != "VAL"}  # VAL is drawn by a run
    problems = list(problems) + split_problems(list(samples.split), sources, "patients", problems)
    if decode and len(samples):
        patients = [list(g.itertuples(index=False)) for _, g in samples.groupby("patient_id", sort=True)]
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for found in tqdm(pool.map(lambda rows: _verify_patient(rows, root), patients), total=len(patients),
                              desc="verify patients", disable=not progress, unit="patient"):
                problems.extend(found)
    return problems


# ----------------------------------------------------------------------------- synthetic twin

_CITATION_TEXT = """\
# Mandatory citation

This folder is a SYNTHETIC twin of the ACDC dataset written by cardiobench: phantom images in the
real release's layout, no patient data. Work that uses the real ACDC data must cite:

O. Bernard, A. Lalande, C. Zotti, F. Cervenansky, et al., "Deep Learning Techniques for Automatic
MRI Cardiac Multi-structures Segmentation and Diagnosis: Is the Problem Solved?", IEEE Transactions
on Medical Imaging, 37(11), 2514-2525, 2018. doi:10.1109/TMI.2018.2837502
"""


def _random_affine(rng: np.random.Generator, spacing: tuple[float, float, float]) -> np.ndarray:
    """Spacing on the diagonal, a random oblique rotation and a scanner-like offset."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                    [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                    [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    a = np.eye(4)
    a[:3, :3] = rot @ np.diag(spacing)
    a[:3, 3] = rng.normal(0, 80, 3).round(3)
    return a


def _twin_patient(args: tuple[int, np.random.SeedSequence, str, str]) -> dict:
    number, seq, group, folder = args
    rng = np.random.default_rng(seq)
    ph = acdc_phantom.sample(rng, group)
    pid = f"patient{number:03d}"
    pdir = Path(folder) / pid
    pdir.mkdir(parents=True)
    cine = np.clip(np.round(acdc_phantom.render(ph)), 0, np.iinfo(np.int16).max).astype(np.int16)
    spacing = (ph.pixel, ph.pixel, ph.dz)
    affine = _random_affine(rng, spacing)
    rr = 60000.0 / rng.uniform(55, 95)  # ms per beat
    nifti.write(pdir / f"{pid}_4d.nii.gz", cine, affine, (*spacing, round(rr / ph.n_frames, 3)))
    for frame in (1, ph.es_frame):
        nifti.write(pdir / f"{pid}_frame{frame:02d}.nii.gz", cine[..., frame - 1], affine, spacing)
        nifti.write(pdir / f"{pid}_frame{frame:02d}_gt.nii.gz", acdc_phantom.labels(ph, frame), affine, spacing)
    (pdir / "Info.cfg").write_text(f"ED: 1\nES: {ph.es_frame}\nGroup: {group}\nHeight: {ph.height:.1f}\n"
                                   f"NbFrame: {ph.n_frames}\nWeight: {ph.weight:.1f}\n")
    return {"patient_id": pid, "group": group}


def synthesize(out: str | os.PathLike, n: int = 150, seed: int = 0, workers: int = 2, progress: bool = True) -> Path:
    """Write an ACDC-format twin of ``n`` phantom patients to ``out`` (atomically).

    Two thirds of the patients go to training/ (patient001...), the rest to testing/ (numbers
    continue), groups DCM, HCM, MINF, NOR, RV in turn; deterministic for ``(n, seed)`` whatever
    ``workers`` (one SeedSequence child per patient; gzip without time stamps).
    """
    with twin_folder(out, n) as tmp:
        n_train = int(round(2 * n / 3))
        (tmp / "MANDATORY_CITATION.md").write_text(_CITATION_TEXT)
        for subset in SUBSETS:
            (tmp / subset).mkdir()
            (tmp / subset / "MANDATORY_CITATION.md").write_text(_CITATION_TEXT)
        seqs = np.random.SeedSequence(seed).spawn(n)
        groups = acdc_phantom.GROUPS
        jobs = [(i + 1, s, groups[i % len(groups)], str(tmp / ("training" if i < n_train else "testing")))
                for i, s in enumerate(seqs)]
        map_jobs(_twin_patient, jobs, workers, "synthesize ACDC twin", "patient", progress)
    return out


FORMAT = module_format(
    sys.modules[__name__],
    description=("ACDC short-axis cine MRI: training|testing/patientNNN/{Info.cfg, _4d, _frameXX, _frameXX_gt}.nii.gz "
                 f"({CITATION})"),
    extras=("split_training", "read_case", "read_mask", "companions"),
    default_twin_n=150)  # like the release: 100 training + 50 testing patients
