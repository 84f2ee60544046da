"""Task echonet_seg: left-ventricle segmentation of apical-4-chamber echo frames (EchoNet-Dynamic).

Protocol: masks are the traced end-diastolic (ED) and end-systolic (ES) outlines of each video
(VolumeTracings.csv); train on TRAIN, keep the epoch with the lowest VAL loss, score Dice on the
traced frames of TEST. Then segment every frame of the videos in ``eval.size_splits`` and write
the per-frame LV area curve, with the end-systoles found on it, to the run's ``size.csv`` (the
file of the same name the original code writes; ``echonet_ef``'s beat-by-beat mode reads it).

predictions.csv has one row per TEST video with pixel counts at the model's resolution for each
traced frame: ``true_*`` (traced area), ``pred_*`` (predicted area), ``inter_*`` (overlap), so every
Dice definition is recomputed from it alone (``echonet_seg.yaml`` beside this module).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from ...data.problems import Problem
from ...data.source import DataSource
from ...distributed import map_shards
from ...errors import DataError
from ...runs import Run
from ..base import Task, TaskData, register_task
from . import beats
from . import format as echonet_dynamic
from .clips import intensity_stats
from .data import prepare_echo
from .frames import TracedFrame, TracedFrames, normalize_frames

log = logging.getLogger("cardiobench")

PHASES = ("ED", "ES")
PREDICTION_COLUMNS = ["sample_id", "patient_id", "split",
                      *[f"{c}_{ph}" for ph in PHASES for c in ("frame", "true", "pred", "inter")]]
SIZE_COLUMNS = ["Filename", "Split", "Frame", "Size", "HumanLarge", "HumanSmall", "ComputerSmall"]


def traced_frames(ds: echonet_dynamic.EchoNetDynamic, samples: pd.DataFrame, videos: list[np.ndarray],
                  size: int) -> tuple[list[list[TracedFrame]], list[Problem]]:
    """Per video, its ED and ES frames with masks; a video whose tracings are unusable gets [].

    A traced frame beyond the video's end, or an outline with no pixel inside the image, makes the
    video unusable for segmentation (reported, the video left out of training and Dice; its area
    curve is still written). An outline partly off the image is clipped to it, with a warning.
    """
    out: list[list[TracedFrame]] = []
    problems: list[Problem] = []
    for i, row in enumerate(samples.itertuples(index=False)):
        tr = ds.tracings.get(row.FileName, [])
        if len(tr) != 2:  # the reader has already reported it
            out.append([])
            continue
        h = int(getattr(row, "FrameHeight", 0) or 0) or videos[i].shape[1]
        w = int(getattr(row, "FrameWidth", 0) or 0) or videos[i].shape[2]
        items, why = [], None
        for phase, t in zip(PHASES, echonet_dynamic.ed_es(tr)):
            if not 0 <= t.frame < len(videos[i]):
                why = f"traced {phase} frame {t.frame} is beyond the video's {len(videos[i])} frames"
                break
            mask, off = echonet_dynamic.trace_mask(t, h, w, size)
            if mask.sum() == 0:
                why = f"the traced {phase} outline (frame {t.frame}) lies outside the {w}x{h} image"
                break
            if off:
                problems.append(Problem(row.path, f"{off} of {len(t.polygon())} outline points of the traced {phase} "
                                                  f"frame {t.frame} lie outside the {w}x{h} image; mask clipped to "
                                                  f"the image", severity="warning", sample=row.FileName))
            items.append(TracedFrame(i, t.frame, phase, mask))
        if why:
            problems.append(Problem(row.path, f"{why}; {row.FileName} left out of segmentation training and Dice",
                                    sample=row.FileName))
            items = []
        out.append(items)
    return out, problems


@torch.no_grad()
def segment(model: torch.nn.Module, frames: np.ndarray, mean: float, std: float, device: str,
            batch: int = 64) -> np.ndarray:
    """Boolean LV masks (N, H, W) of uint8 frames (N, H, W), ``batch`` frames at a time."""
    model.eval()
    out = np.empty(frames.shape, dtype=bool)
    for j in range(0, len(frames), batch):
        x = normalize_frames(frames[j:j + batch], mean, std).to(device)
        out[j:j + batch] = (model(x)[:, 0] > 0).cpu().numpy()
    return out


@dataclass(frozen=True)
class SegExtras:
    """What prediction needs beyond the prepared videos: each video's traced frames with their masks
    (empty for a video whose tracings are unusable), and the TRAIN pixel mean and SD."""

    traced: list[list[TracedFrame]]
    mean: float
    sd: float


@register_task("echonet_seg")
class EchoNetSeg(Task):
    def datasets(self, cfg: DictConfig, run: Run, source: DataSource) -> TaskData:
        size = int(cfg.image.size)
        traced: list[list[TracedFrame]] = []

        def trace(samples: pd.DataFrame, videos: list[np.ndarray]) -> list[Problem]:
            found, problems = traced_frames(ds, samples, videos, size)
            traced.extend(found)
            return problems

        ds = echonet_dynamic.read(source.root)
        _, prepared = prepare_echo(cfg, run, source, size, inspect=trace, index=ds)
        samples, videos = prepared.samples, prepared.arrays
        split = samples.Split.to_numpy()
        items = {k: [it for i in np.flatnonzero(split == k) for it in traced[i]] for k in echonet_dynamic.SPLITS}
        for k, v in items.items():
            if not v:
                raise DataError(f"{source.root}: no usable traced {k} frames (VolumeTracings.csv) after validation")
        mean, sd = intensity_stats([videos[i] for i in np.flatnonzero(split == "TRAIN")])
        log.info("%d/%d/%d traced TRAIN/VAL/TEST frames at %dx%d", len(items["TRAIN"]), len(items["VAL"]),
                 len(items["TEST"]), size, size)
        return TaskData(TracedFrames(videos, items["TRAIN"], mean, sd), TracedFrames(videos, items["VAL"], mean, sd),
                        prepared, SegExtras(traced=traced, mean=mean, sd=sd))

    def predict(self, cfg: DictConfig, run: Run, model: torch.nn.Module, data: TaskData, device: str) -> pd.DataFrame:
        """Pixel counts of the traced TEST frames, then every video's area curve into size.csv."""
        samples, videos, traced = data.prepared.samples, data.prepared.arrays, data.extras.traced
        mean, sd = data.extras.mean, data.extras.sd
        scored = cfg.task.split
        which = [i for i in np.flatnonzero(samples.Split.to_numpy() == scored) if traced[i]]

        def shard(positions: np.ndarray) -> list[dict]:
            rows = []
            for i in (which[k] for k in positions):
                r = samples.iloc[i]
                rec = {"sample_id": r.FileName, "patient_id": str(r.get("PatientID", r.FileName)), "split": scored}
                for it in traced[i]:
                    pred = segment(model, videos[i][it.frame][None], mean, sd, device)[0]
                    truth = it.mask.astype(bool)
                    rec.update({f"frame_{it.phase}": it.frame, f"true_{it.phase}": int(truth.sum()),
                                f"pred_{it.phase}": int(pred.sum()), f"inter_{it.phase}": int((pred & truth).sum())})
                rows.append(rec)
            return rows

        rows = map_shards(shard, len(which))  # the videos shared out among the ranks under torchrun
        write_sizes(run, model, samples, videos, traced, mean, sd, device, cfg, cfg.eval.frame_batch)
        return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)


def write_sizes(run: Run, model: torch.nn.Module, samples: pd.DataFrame, videos: list[np.ndarray],
                traced: list[list[TracedFrame]], mean: float, std: float, device: str, cfg: DictConfig,
                batch: int) -> None:
    """size.csv: per video and frame, the segmented LV area in pixels at the model's resolution,
    the human ED (HumanLarge) and ES (HumanSmall) frames, and the detected end-systoles (ComputerSmall)."""
    splits = [str(s).upper() for s in cfg.eval.size_splits]
    which = np.flatnonzero(samples.Split.isin(splits).to_numpy())

    def areas(positions: np.ndarray) -> list[np.ndarray]:
        return [segment(model, np.asarray(videos[which[k]]), mean, std, device, batch).sum(axis=(1, 2))
                for k in tqdm(positions, desc="segment every frame", unit="video", disable=not cfg.progress)]

    parts = []
    for i, area in zip(which, map_shards(areas, len(which))):  # the videos shared out among the ranks
        r = samples.iloc[i]
        fps = float(r.get("FPS", 50.0) or 50.0)
        es = beats.end_systoles(area, fps)
        human = {it.phase: it.frame for it in traced[i]}
        frame = np.arange(len(area))
        parts.append(pd.DataFrame({"Filename": r.FileName, "Split": r.Split, "Frame": frame, "Size": area,
                                   "HumanLarge": (frame == human.get("ED", -1)).astype(int),
                                   "HumanSmall": (frame == human.get("ES", -1)).astype(int),
                                   "ComputerSmall": np.isin(frame, es).astype(int)}))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SIZE_COLUMNS)
    path = run.write_table("size.csv", table)
    log.info("wrote %s (%d videos of %s)", path, len(which), "/".join(splits))
