"""Test-time strategies of the EF regressor beyond one clip: all-clips averaging and beat by beat.

All-clips averaging (EchoNet-Dynamic's test-time augmentation) predicts every clip of a video and
averages. Beat by beat takes the LV area curve of a segmentation run (its ``size.csv``), finds the
end-systoles on it, predicts one clip centred on each of up to ``max_beats`` beats and averages.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from ...data.source import DataSource
from ...errors import DataError
from ...train import TrainConfig, amp_setting
from .clips import EchoClips
from .format import normalize_id

log = logging.getLogger("cardiobench")


@torch.no_grad()
def predict_all_clips(model: torch.nn.Module, ds: EchoClips, tcfg: TrainConfig, stride: int = 1,
                      batch: int = 16) -> np.ndarray:
    """Mean prediction over every clip of each video (EchoNet's test-time all-clips averaging).

    Clips start every ``stride`` frames and are built ``batch`` at a time from the uint8 video, so
    memory stays bounded by one batch of float clips whatever the video's length.
    """
    from tqdm.auto import tqdm

    from ...memory import return_large_blocks

    return_large_blocks()  # activations of long evaluations must not pile up in the heap
    model.eval()
    device = torch.device(tcfg.device)
    span = (ds.frames - 1) * ds.period + 1
    out = np.empty(len(ds))
    for i, video in enumerate(tqdm(ds.videos, desc="predict TEST (all clips)", leave=False,
                                   disable=not tcfg.progress, unit="video")):
        starts = np.arange(0, max(1, len(video) - span + 1), stride)
        total = 0.0
        for j in range(0, len(starts), batch):
            x = torch.stack([ds.clip(video, int(s)) for s in starts[j:j + batch]]).to(device)
            total += float(model(x).float().sum())
        out[i] = total / len(starts)
    return out


@torch.no_grad()
def predict_first_clip(model: torch.nn.Module, ds: EchoClips, tcfg: TrainConfig, batch: int = 16) -> np.ndarray:
    """The prediction from the clip starting at frame 0 of each video: EchoNet-Dynamic's single-clip
    protocol as published (its analysis keeps the clip with start 0, ``data$V2 == 0``)."""
    from tqdm.auto import tqdm

    model.eval()
    device = torch.device(tcfg.device)
    use_amp, amp_dtype = amp_setting(tcfg)  # the precision single_clip predicts in
    out = np.empty(len(ds))
    for j in tqdm(range(0, len(ds), batch), desc="predict TEST (first clip)", leave=False,
                  disable=not tcfg.progress, unit="batch"):
        x = torch.stack([ds.clip(v, 0) for v in ds.videos[j:j + batch]]).to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            out[j:j + len(x)] = model(x).float().reshape(len(x), -1)[:, 0].cpu().numpy()
    return out


def segmentation_sizes(cfg: DictConfig, source: DataSource) -> tuple[Path, pd.DataFrame] | None:
    """(run folder, size.csv) of the segmentation run whose LV area curves drive beat-by-beat EF.

    ``eval.segmentation_run``: a run folder (or a size.csv), or ``auto`` for the newest finished
    ``echonet_seg`` run under ``runs_root`` on the same data (same fingerprint); None when none is found.
    """
    from ...runs import find_runs

    where = cfg.eval.segmentation_run
    if where is None:
        return None
    if str(where) != "auto":
        path = Path(str(where)).expanduser()
        file = path if path.suffix == ".csv" else path / "size.csv"
        if not file.is_file():
            raise DataError(f"{file}: eval.segmentation_run has no size.csv (an echonet_seg run folder writes one)")
        return file.parent, read_sizes(file)
    best = None
    for r in find_runs([Path(cfg.runs_root) / "echonet_seg"]):
        m = r.manifest()
        if (m.get("status") == "finished" and m.get("data", {}).get("fingerprint") == source.fingerprint
                and (r.path / "size.csv").is_file() and (best is None or m.get("ended", "") > best[1])):
            best = (r.path, m.get("ended", ""))
    return None if best is None else (best[0], read_sizes(best[0] / "size.csv"))


def read_sizes(file: Path) -> pd.DataFrame:
    """size.csv (ours or the original code's): Filename, Frame, Size per frame."""
    try:
        sizes = pd.read_csv(file)
    except Exception as exc:
        raise DataError(f"{file}: cannot be parsed as CSV ({exc})") from None
    missing = [c for c in ("Filename", "Frame", "Size") if c not in sizes.columns]
    if missing:
        raise DataError(f"{file}: missing column(s) {', '.join(missing)}")
    sizes["Filename"] = sizes["Filename"].map(normalize_id)
    return sizes


@torch.no_grad()
def predict_beats(model: torch.nn.Module, ds: EchoClips, tcfg: TrainConfig, names: list[str], sizes: pd.DataFrame,
                  fps: np.ndarray, max_beats: int = 5, batch: int = 16, stride: int = 1,
                  records: list[dict] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Beat-by-beat EF: the mean prediction over clips centred on each end-systole (up to ``max_beats``).

    End-systoles come from the segmentation's area curve (:func:`cardiobench.tasks.echonet.beats.end_systoles`).
    A video with no area curve or no detected beat is predicted by all-clips averaging instead;
    returns (EF_pred, beats used, fallback reason or ""). ``records`` collects one dict per beat
    (sample_id, beat, es_frame, clip_start, EF_pred): the run's beats.csv.
    """
    from . import beats

    model.eval()
    device = torch.device(tcfg.device)
    curves = {k: g.sort_values("Frame").Size.to_numpy(float) for k, g in sizes.groupby("Filename")}
    pred, n_beats, fallback = np.empty(len(ds)), np.zeros(len(ds), dtype=int), [""] * len(ds)
    for i, (name, video) in enumerate(zip(names, ds.videos)):
        area = curves.get(normalize_id(name))
        es = beats.end_systoles(area, fps[i]) if area is not None else np.zeros(0, int)
        if len(es) == 0:
            fallback[i] = "no area curve: all clips" if area is None else "no beat found: all clips"
            single = EchoClips([video], [0.0], ds.frames, ds.period, ds.mean, ds.std,
                               normalize=ds.normalize, layout=ds.layout)
            pred[i] = predict_all_clips(model, single, replace(tcfg, progress=False), stride, batch)[0]
            continue
        starts = beats.beat_clip_starts(es, len(video), ds.frames, ds.period, max_beats)
        x = torch.stack([ds.clip(video, int(s)) for s in starts]).to(device)
        per_beat = torch.cat([model(x[j:j + batch]).float() for j in range(0, len(x), batch)])[:, 0].cpu().numpy()
        pred[i] = float(per_beat.mean())
        n_beats[i] = len(starts)
        if records is not None:
            records.extend(dict(sample_id=name, beat=k + 1, es_frame=int(e), clip_start=int(st), EF_pred=float(v))
                           for k, (e, st, v) in enumerate(zip(es, starts, per_beat)))
    return pred, n_beats, fallback
