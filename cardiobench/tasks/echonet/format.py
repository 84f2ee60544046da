"""EchoNet-Dynamic on-disk format (Ouyang et al., Nature 2020) and its synthetic twin.

Released layout::

    FileList.csv        FileName,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split
                        (FileName without extension; Split TRAIN/VAL/TEST)
    VolumeTracings.csv  FileName,X1,Y1,X2,Y2,Frame  (FileName *with* .avi; two traced frames per
                        video in file order; per frame the first row is the long axis, the rest
                        are the disk chords)
    Videos/<FileName>.avi   112x112 apical-4-chamber echo videos

Real quirks accepted: FileName with or without extension, any case of Split, extra files or
columns. Anything skipped is reported as a :class:`~cardiobench.data.problems.Problem`.
"""
from __future__ import annotations

import csv
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ...data.format import module_format
from ...data.problems import Problem, split_problems
from ...data.textfile import duplicated, read_text, text_stream
from ...data.twins import map_jobs, twin_folder
from ...data.video import read_avi, write_avi
from ...errors import DataError
from . import twin as echo_phantom

NAME = "echonet_dynamic"
FILELIST = "FileList.csv"
TRACINGS = "VolumeTracings.csv"
VIDEOS = "Videos"
FILELIST_COLUMNS = ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"]
REQUIRED_COLUMNS = ["FileName", "EF", "Split"]
TRACING_HEADER = ["FileName", "X1", "Y1", "X2", "Y2", "Frame"]
SPLITS = ("TRAIN", "VAL", "TEST")
# Plausible ranges (inclusive): outside them a row is kept with a warning naming the key. An EF under 5 %
# is a heart that barely ejects and one over 95 % a ventricle that empties completely (a typo or a swapped
# column is likelier); echo is recorded at tens of frames per second, not 0 or thousands.
EF_PLAUSIBLE = (5.0, 95.0)
FPS_PLAUSIBLE = (10.0, 300.0)
EF_VOLUME_TOLERANCE = 1.0  # EF points between the EF column and 100 (EDV - ESV) / EDV
# Optional columns a task reads: a row whose value is not a positive number would crash or mislead it
# (beats timed by FPS, tracings scaled by the frame size), so such a row is skipped.
POSITIVE_COLUMNS = {"FPS": "frames per second", "FrameHeight": "pixels", "FrameWidth": "pixels"}
TWIN_VERSION = 1  # bump when the phantom changes: it is part of the twin's cache key


@dataclass
class Tracing:
    """One traced frame: the long axis (x1, y1, x2, y2) and the disk chords (k, 4)."""

    frame: int
    axis: np.ndarray
    chords: np.ndarray

    def volume(self, pixel_cm: float = echo_phantom.PIXEL_CM) -> float:
        return echo_phantom.disk_volume(self.axis, self.chords, pixel_cm)

    def polygon(self) -> np.ndarray:
        """The LV outline as EchoNet-Dynamic draws it: chord starts top to bottom, then chord ends
        back up; (2k, 2) x/y."""
        x = np.concatenate([self.chords[:, 0], self.chords[::-1, 2]])
        y = np.concatenate([self.chords[:, 1], self.chords[::-1, 3]])
        return np.column_stack([x, y])


@dataclass
class EchoNetDynamic:
    """A parsed EchoNet-Dynamic folder: usable samples, tracings and the problems found."""

    root: Path
    samples: pd.DataFrame  # one row per usable video; columns of FileList.csv plus `path`
    tracings: dict[str, list[Tracing]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def split(self, name: str) -> pd.DataFrame:
        return self.samples[self.samples.Split == name].reset_index(drop=True)


def normalize_id(name: str) -> str:
    """EchoNet FileNames appear with and without the .avi extension; they are compared without."""
    name = str(name).strip()
    return name[:-4] if name.lower().endswith(".avi") else name


def _read_filelist(flist: Path) -> pd.DataFrame:
    """FileList.csv as a table; DataError naming the file when it cannot be decoded or parsed, or its
    header repeats a column (which of the two holds the label would be a guess)."""
    text = read_text(flist)
    header = [c.strip() for c in next(csv.reader(text.splitlines()[:1]), [])]
    twice = duplicated(header)
    if twice:
        raise DataError(f"{flist}: column(s) {', '.join(twice)} appear more than once in the header; which one "
                        "holds the value is ambiguous")
    try:
        return pd.read_csv(text_stream(flist))
    except Exception as exc:  # pandas raises many types for malformed CSV
        raise DataError(f"{flist}: cannot be parsed as CSV ({str(exc).splitlines()[0] if str(exc) else exc})") from None


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _row_errors(row: dict) -> list[str]:
    """Why one FileList row cannot be used (empty: it can)."""
    out = []
    ef = _number(row["EF"])
    if not (math.isfinite(ef) and 0 <= ef <= 100):
        out.append(f"EF is {row['EF']!r}, not a number in [0, 100]")
    if row["Split"] not in SPLITS:
        out.append(f"Split {row['Split']!r} is not one of {', '.join(SPLITS)}")
    for column, unit in POSITIVE_COLUMNS.items():
        if column in row:
            v = _number(row[column])
            if not (math.isfinite(v) and v > 0):
                out.append(f"{column} is {row[column]!r}, not a positive number ({unit})")
    return out


def _row_warnings(row: dict) -> list[str]:
    """What is implausible but usable in one FileList row: EF near 0 or 100, an odd frame rate, ESV and
    EDV that contradict each other or the EF column."""
    out = []
    ef = _number(row["EF"])
    if not EF_PLAUSIBLE[0] <= ef <= EF_PLAUSIBLE[1]:
        out.append(f"EF {ef:g} % is outside the plausible {EF_PLAUSIBLE[0]:g}-{EF_PLAUSIBLE[1]:g} %")
    fps = _number(row.get("FPS"))
    if math.isfinite(fps) and fps > 0 and not FPS_PLAUSIBLE[0] <= fps <= FPS_PLAUSIBLE[1]:
        out.append(f"FPS {fps:g} is outside the plausible {FPS_PLAUSIBLE[0]:g}-{FPS_PLAUSIBLE[1]:g} frames per "
                   "second for echo (beats are timed with it)")
    esv, edv = _number(row.get("ESV")), _number(row.get("EDV"))
    if math.isfinite(esv) and math.isfinite(edv):
        if esv > edv:
            out.append(f"ESV {esv:g} is larger than EDV {edv:g} (swapped?)")
        elif edv > 0 and math.isfinite(ef) and abs(100 * (edv - esv) / edv - ef) > EF_VOLUME_TOLERANCE:
            out.append(f"EF {ef:g} disagrees with ESV {esv:g} and EDV {edv:g}, which give "
                       f"{100 * (edv - esv) / edv:.1f} %")
    return out


def read(root: str | os.PathLike, tracings: bool = True) -> EchoNetDynamic:
    """Parse FileList.csv (and VolumeTracings.csv) under ``root`` without decoding videos.

    Raises :class:`DataError` when the folder or FileList.csv is unusable; per-sample problems
    (bad EF, FPS or frame size, unknown split, missing video, duplicate name) exclude that sample and
    are reported; implausible but usable values (EF 0, ESV > EDV, FPS 5000) are warnings.
    """
    root = Path(root)
    flist = root / FILELIST
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    if not flist.is_file():
        raise DataError(f"{flist}: not found (an EchoNet-Dynamic folder holds FileList.csv, VolumeTracings.csv, Videos/)")
    df = _read_filelist(flist)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{flist}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}")

    problems: list[Problem] = []
    df = df.copy()
    df["FileName"] = df["FileName"].map(normalize_id)
    df["Split"] = df["Split"].astype(str).str.strip().str.upper()
    raw = df.to_dict("records")  # the values as written, for the messages
    df["EF"] = pd.to_numeric(df["EF"], errors="coerce")
    for column in ("ESV", "EDV", "NumberOfFrames", *POSITIVE_COLUMNS):
        if column in df.columns:
            df[column] = pd.to_numeric(df[column], errors="coerce")
    df["path"] = [str(root / VIDEOS / f"{n}.avi") for n in df.FileName]
    keep = np.ones(len(df), dtype=bool)
    seen: set[str] = set()
    for i, (row, written) in enumerate(zip(df.itertuples(index=False), raw)):
        where = f"{flist} row {i + 2}"  # +1 header, +1 one-based
        if row.FileName in seen:
            problems.append(Problem(where, f"duplicate FileName {row.FileName}; later row skipped", sample=row.FileName))
            keep[i] = False
            continue
        seen.add(row.FileName)
        for why in _row_errors(written):
            problems.append(Problem(where, f"{why}; {row.FileName} skipped", sample=row.FileName))
            keep[i] = False
        if keep[i]:
            problems += [Problem(where, f"{why}; {row.FileName} kept", severity="warning", sample=row.FileName)
                         for why in _row_warnings(written)]
        if not Path(row.path).is_file():
            problems.append(Problem(row.path, f"video listed in {FILELIST} is missing; {row.FileName} skipped", sample=row.FileName))
            keep[i] = False
    samples = df[keep].reset_index(drop=True)
    listed = set(df.FileName)
    if (root / VIDEOS).is_dir():
        for p in sorted((root / VIDEOS).glob("*.avi")):
            if p.stem not in listed:
                problems.append(Problem(str(p), f"video not listed in {FILELIST}; ignored", severity="warning"))

    traced: dict[str, list[Tracing]] = {}
    if tracings:
        traced, tprob = read_tracings(root / TRACINGS, listed)
        problems.extend(tprob)
    return EchoNetDynamic(root=root, samples=samples, tracings=traced, problems=problems)


def index(root: str | os.PathLike) -> tuple[pd.DataFrame, list[Problem]]:
    """The format protocol's index: one row per usable video with ``sample_id`` (FileName),
    ``patient_id`` (PatientID where the file has one, else the FileName: one video per patient),
    ``split``, ``path`` and the labels of FileList.csv (EF, ESV, EDV, FPS, ...)."""
    ds = read(root, tracings=False)
    s = ds.samples
    patient = s["PatientID"].astype(str) if "PatientID" in s.columns else s.FileName
    out = s.assign(sample_id=s.FileName, patient_id=patient.to_numpy(), split=s.Split)
    return out, ds.problems


def preprocess_config(size: int) -> dict:
    """What a cached video depends on besides its file: the decoder, the colour handling, the resize."""
    return {"decoder": "opencv-avi", "gray": True, "size": int(size), "resize": "INTER_AREA"}


def preprocess(path: Path, config: dict) -> tuple[dict[str, np.ndarray], dict]:
    """Decode every frame of one video into uint8 (T, size, size): ``{"frames": ...}`` and its metadata."""
    import cv2

    v = read_avi(path)
    size = int(config["size"])
    if v.shape[1:] != (size, size):
        v = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in v])
    return {"frames": v}, {"frames": int(len(v))}


def read_tracings(path: Path, listed: set[str] | None = None) -> tuple[dict[str, list[Tracing]], list[Problem]]:
    """Parse VolumeTracings.csv: per video, its traced frames in file order."""
    if not path.is_file():
        return {}, [Problem(str(path), "not found; no tracings available", severity="warning")]
    try:
        text = read_text(path)
    except DataError as exc:
        return {}, [Problem(str(path), f"{str(exc).split(': ', 1)[-1]}; tracings not used")]
    header = text.splitlines()[0] if text else ""
    cols = [c.strip() for c in header.split(",")]
    if cols != TRACING_HEADER:
        return {}, [Problem(str(path), f"header is {header!r}, expected {','.join(TRACING_HEADER)!r}; tracings not used")]
    df = pd.read_csv(text_stream(path), skip_blank_lines=True)
    problems: list[Problem] = []
    for c in TRACING_HEADER[1:]:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    values = df[TRACING_HEADER[1:]].to_numpy(dtype=np.float64)
    bad = pd.Series(~np.isfinite(values).all(axis=1), index=df.index)  # NaN and inf alike
    for i in np.nonzero(bad.to_numpy())[0]:
        problems.append(Problem(f"{path} row {i + 2}", "non-numeric or infinite coordinate or frame; row skipped"))
    df = df[~bad]
    df["FileName"] = df["FileName"].map(normalize_id)
    out: dict[str, list[Tracing]] = {}
    for name, g in df.groupby("FileName", sort=False):
        if listed is not None and name not in listed:
            problems.append(Problem(str(path), f"tracings for {name}, which is not in {FILELIST}; ignored", severity="warning"))
            continue
        frames = []
        for frame, fg in g.groupby("Frame", sort=False):
            xy = fg[["X1", "Y1", "X2", "Y2"]].to_numpy(dtype=np.float64)
            if len(xy) < 2:
                problems.append(Problem(str(path), f"{name} frame {int(frame)} has {len(xy)} row(s), need a long axis and chords", sample=name))
                continue
            frames.append(Tracing(frame=int(frame), axis=xy[0], chords=xy[1:]))
        if len(frames) != 2:
            problems.append(Problem(str(path), f"{name} has {len(frames)} traced frame(s), expected 2", severity="warning", sample=name))
        out[name] = frames
    return out, problems


def trace_mask(tracing: Tracing, height: int, width: int, size: int) -> tuple[np.ndarray, int]:
    """The traced LV as a (size, size) uint8 mask of a (height, width) frame resized to ``size``.

    A pixel is inside when its centre is inside the polygon (``skimage.draw.polygon``'s rule, which
    the original code applies to rounded vertices; we keep the sub-pixel vertices). Also returns
    how many vertices lie off the frame, so callers can report tracings drawn outside the image
    (the mask itself is clipped to the image).
    """
    from matplotlib.path import Path as MplPath  # here, not at import: `data verify` starts faster without it

    poly = tracing.polygon()
    # Pixel centres sit at integer coordinates in both grids, hence the half-pixel shifts.
    scaled = np.column_stack([(poly[:, 0] + 0.5) * size / width - 0.5, (poly[:, 1] + 0.5) * size / height - 0.5])
    yy, xx = np.mgrid[0:size, 0:size]
    inside = MplPath(scaled).contains_points(np.column_stack([xx.ravel(), yy.ravel()]))
    off = (poly[:, 0] < -0.5) | (poly[:, 0] > width - 0.5) | (poly[:, 1] < -0.5) | (poly[:, 1] > height - 0.5)
    return inside.reshape(size, size).astype(np.uint8), int(off.sum())


def ed_es(tracings: list[Tracing]) -> tuple[Tracing, Tracing]:
    """(end-diastolic, end-systolic) tracing: the larger and smaller traced volume, not file order."""
    a, b = tracings[0], tracings[-1]
    return (a, b) if a.volume() >= b.volume() else (b, a)


def split_sources(root: str | os.PathLike) -> dict[str, str]:
    """Where each split's rows come from (relative to ``root``): the Split column of FileList.csv."""
    return {k: f"{FILELIST} (column Split)" for k in SPLITS}


def _frame_size_problems(row, video: np.ndarray) -> list[Problem]:
    """FrameHeight/FrameWidth against the decoded frames: tracings are scaled by the columns, so a
    mismatch misplaces the traced outline."""
    out = []
    for column, actual in (("FrameHeight", video.shape[1]), ("FrameWidth", video.shape[2])):
        declared = getattr(row, column, None)
        if declared is not None and not pd.isna(declared) and int(declared) != actual:
            out.append(Problem(row.path, f"{FILELIST} says {column} {int(declared)}, the video's frames are "
                                         f"{actual} px (tracings are scaled by {column})", severity="warning",
                               sample=row.FileName))
    return out


def _tracing_problems(row, video: np.ndarray, tracings: list[Tracing]) -> list[Problem]:
    """Traced frames beyond the video (errors) and outline points off the frame (warnings: clipped)."""
    out = []
    h, w = video.shape[1:3]
    for t in tracings:
        if not 0 <= t.frame < len(video):
            out.append(Problem(row.path, f"traced frame {t.frame} is beyond the video's {len(video)} frames",
                               sample=row.FileName))
            continue
        poly = np.vstack([t.axis.reshape(2, 2), t.polygon()])
        off = int(((poly[:, 0] < -0.5) | (poly[:, 0] > w - 0.5) | (poly[:, 1] < -0.5) | (poly[:, 1] > h - 0.5)).sum())
        if off:
            out.append(Problem(f"{row.path}", f"{off} traced point(s) of frame {t.frame} in {TRACINGS} lie off the "
                                              f"{w}x{h} frame (negative or too large); the outline is clipped",
                               severity="warning", sample=row.FileName))
    return out


def _check_video(row, tracings: list[Tracing]) -> list[Problem]:
    """Decode one video and compare it with its FileList row and tracings."""
    try:
        video = read_avi(row.path)
    except DataError as exc:
        path, _, msg = str(exc).partition(": ")
        return [Problem(path, msg, sample=row.FileName)]
    out = []
    n_decl = getattr(row, "NumberOfFrames", None)
    if n_decl is not None and not pd.isna(n_decl) and int(n_decl) != len(video):
        out.append(Problem(row.path, f"decoded {len(video)} frames, {FILELIST} says {int(n_decl)}", severity="warning", sample=row.FileName))
    if int(video.min()) == int(video.max()):
        out.append(Problem(row.path, f"every pixel of every frame is {int(video.min())} (a blank video)",
                           severity="warning", sample=row.FileName))
    return out + _frame_size_problems(row, video) + _tracing_problems(row, video, tracings)


def verify(root: str | os.PathLike, decode: bool = True, progress: bool = True, workers: int = 2) -> list[Problem]:
    """Check every file once: FileList rows, tracings, every split present, and (``decode``) every video's
    frames against its row and tracings."""
    ds = read(root)
    problems = list(ds.problems) + split_problems(list(ds.samples.Split),
                                                  {k: f"{Path(root) / v}" for k, v in split_sources(root).items()},
                                                  "videos", ds.problems)
    if decode and len(ds.samples):
        rows = list(ds.samples.itertuples(index=False))
        with ThreadPoolExecutor(workers) as pool:
            checks = pool.map(lambda row: _check_video(row, ds.tracings.get(row.FileName, [])), rows)
            for found in tqdm(checks, total=len(rows), desc="verify videos", disable=not progress, unit="video"):
                problems.extend(found)
    return problems


# ----------------------------------------------------------------------------- synthetic twin


def _twin_video(args: tuple[int, np.random.SeedSequence, str]) -> tuple[dict, list[tuple]]:
    index, seq, videos = args
    rng = np.random.default_rng(seq)
    name = "0X" + "".join(f"{b:02X}" for b in rng.integers(0, 256, 8))
    ph = echo_phantom.sample(rng)
    write_avi(Path(videos) / f"{name}.avi", echo_phantom.render(ph), echo_phantom.FPS)
    ed, es = ph.traced_frames()
    vols, rows = {}, []
    for frame in (ed, es):  # EchoNet lists traced frames in file order; readers decide ED/ES by volume
        axis, chords = echo_phantom.trace(ph, frame)
        vols[frame] = echo_phantom.disk_volume(axis, chords)
        for seg in (axis, *chords):
            rows.append((f"{name}.avi", *np.round(seg, 4), frame))
    edv, esv = vols[ed], vols[es]
    row = dict(
        FileName=name,
        EF=round(100 * (edv - esv) / edv, 4),
        ESV=round(esv, 4),
        EDV=round(edv, 4),
        FrameHeight=echo_phantom.SIZE,
        FrameWidth=echo_phantom.SIZE,
        FPS=echo_phantom.FPS,
        NumberOfFrames=ph.n_frames,
    )
    return row, rows


def synthesize(out: str | os.PathLike, n: int = 500, seed: int = 0, split: tuple[float, float] = (0.7, 0.15),
               workers: int = 2, progress: bool = True) -> Path:
    """Write an EchoNet-Dynamic-format twin of ``n`` phantom videos to ``out`` (atomically).

    Deterministic for a given ``(n, seed)``, whatever ``workers``. EF, ESV and EDV in FileList.csv
    are measured from the traced chords by the method of disks.
    """
    with twin_folder(out, n) as tmp:
        (tmp / VIDEOS).mkdir()
        seqs = np.random.SeedSequence(seed).spawn(n)
        jobs = [(i, s, str(tmp / VIDEOS)) for i, s in enumerate(seqs)]
        results = map_jobs(_twin_video, jobs, workers, "synthesize echo twin", "video", progress, chunksize=4)
        order = np.random.default_rng(seed).permutation(n)
        n_train, n_val = int(round(split[0] * n)), int(round(split[1] * n))
        splits = np.empty(n, dtype=object)
        splits[order[:n_train]] = "TRAIN"
        splits[order[n_train:n_train + n_val]] = "VAL"
        splits[order[n_train + n_val:]] = "TEST"
        flist = pd.DataFrame([r for r, _ in results], columns=FILELIST_COLUMNS[:-1])
        flist["Split"] = splits
        flist.to_csv(tmp / FILELIST, index=False)
        pd.DataFrame([t for _, ts in results for t in ts], columns=TRACING_HEADER).to_csv(tmp / TRACINGS, index=False)
    return out


FORMAT = module_format(
    sys.modules[__name__], index_files=(FILELIST, TRACINGS),
    description="EchoNet-Dynamic: FileList.csv, VolumeTracings.csv, Videos/*.avi (Ouyang et al. 2020)")
