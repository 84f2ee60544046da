"""Task echonet_ef: ejection fraction regression from apical-4-chamber echo video.

Protocol: train on TRAIN, keep the epoch with the lowest VAL loss, predict TEST in each evaluation
mode of ``eval.modes`` (the first is primary): the clip at frame 0 (``first_clip``, the published
single-clip protocol), one seeded random clip (``single_clip``, optionally
MC-dropout), the mean over all clips (``all_clips``), or beat by beat from an ``echonet_seg`` run's
area curves (``beat_by_beat``). EchoNet-Dynamic has one video per patient, so ``patient_id`` is the
video's FileName unless the data says otherwise. Metrics, figures and the external-predictions
schema are in ``echonet_ef.yaml`` beside this module.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from omegaconf import DictConfig
from torch.utils.data import Subset

from ...data.source import DataSource
from ...distributed import map_shards
from ...errors import DataError
from ...models import build
from ...models.video_resnet import channels_last
from ...runs import Run
from ...train import predict, train_config
from ..base import Task, TaskData, register_task
from .clips import EchoClips, intensity_stats
from .data import prepare_echo
from .inference import predict_all_clips, predict_beats, predict_first_clip, segmentation_sizes

log = logging.getLogger("cardiobench")


@dataclass(frozen=True)
class EFExtras:
    """What prediction needs beyond the prepared videos: every video's EF, the clip maker
    ``clips(split, seed)``, the echonet_seg run whose area curves give the beats (None: none found), and
    the data's fingerprint (to name it when that run is missing)."""

    ef: np.ndarray
    clips: Callable[[str, int], EchoClips]
    segmentation: Any
    fingerprint: str


@register_task("echonet_ef")
class EchoNetEF(Task):
    def datasets(self, cfg: DictConfig, run: Run, source: DataSource) -> TaskData:
        _, prepared = prepare_echo(cfg, run, source, cfg.clip.size)
        samples, videos, idx = prepared.samples, prepared.arrays, prepared.split
        ef = samples.EF.to_numpy(dtype=np.float32)
        mean, sd = intensity_stats([videos[i] for i in idx["TRAIN"]])

        def clips(k: str, seed: int) -> EchoClips:
            return EchoClips([videos[i] for i in idx[k]], ef[idx[k]], cfg.clip.frames, cfg.clip.period, mean, sd,
                             seed, normalize=cfg.clip.normalize, layout=cfg.clip.layout)

        log.info("%d/%d/%d TRAIN/VAL/TEST videos, clips %dx%dx%d every %d frames", len(idx["TRAIN"]),
                 len(idx["VAL"]), len(idx["TEST"]), cfg.clip.frames, cfg.clip.size, cfg.clip.size, cfg.clip.period)
        # Found (and a bad segmentation_run refused) before training, not after it.
        seg = segmentation_sizes(cfg, source) if "beat_by_beat" in cfg.eval.modes else None
        return TaskData(clips("TRAIN", cfg.seed), clips("VAL", cfg.seed + 1), prepared,
                        EFExtras(ef=ef, clips=clips, segmentation=seg, fingerprint=source.fingerprint))

    def build_model(self, cfg: DictConfig, data: TaskData) -> nn.Module:
        bias = cfg.train.output_bias  # the output bias starts at the training-mean EF ("train_mean")
        if bias == "train_mean":
            bias = float(data.extras.ef[data.prepared.split.train].mean())
        return build(cfg.model.name, output_bias=None if bias is None else float(bias),
                     **{k: v for k, v in cfg.model.items() if k != "name"})

    def predict(self, cfg: DictConfig, run: Run, model: nn.Module, data: TaskData, device: str) -> pd.DataFrame:
        model = channels_last(model)
        tcfg = train_config(cfg, device)
        test = data.extras.clips(cfg.task.split, cfg.seed + 2)
        rows = data.prepared.samples.iloc[data.prepared.split[cfg.task.split]]
        patient = rows["PatientID"] if "PatientID" in rows.columns else rows.FileName
        tables = []
        for mode in cfg.eval.modes:
            table = pd.DataFrame({"sample_id": rows.FileName.to_numpy(), "patient_id": patient.to_numpy(),
                                  "split": cfg.task.split, "EF": rows.EF.to_numpy(dtype=float), "mode": mode})
            if mode == "single_clip":
                mc = int(cfg.eval.mc_dropout or 0)
                torch.manual_seed(cfg.seed + 3)  # MC-dropout masks are part of the seeded run
                out = map_shards(lambda idx: predict(model, Subset(test, idx), tcfg, desc="predict TEST",
                                                     mc_samples=mc), len(test))
                table["EF_pred"] = (out[0] if mc else out)[:, 0].astype(float)
                if mc:
                    table["EF_pred_std"] = out[1][:, 0].astype(float)  # MC-dropout predictive SD over `mc` passes
                    table["mc_passes"] = mc
            elif mode == "first_clip":
                table["EF_pred"] = map_shards(lambda idx: predict_first_clip(
                    model, test.videos_at(idx), tcfg, cfg.eval.clip_batch), len(test))
            elif mode == "all_clips":
                table["EF_pred"] = map_shards(lambda idx: predict_all_clips(
                    model, test.videos_at(idx), tcfg, cfg.eval.all_clips_stride, cfg.eval.clip_batch), len(test))
                table["clips_stride"] = cfg.eval.all_clips_stride
            elif mode == "beat_by_beat":
                if not self._beat_by_beat(cfg, run, model, data, test, tcfg, rows, table):
                    continue
            else:
                raise DataError(f"eval mode {mode!r} is not available for echonet_ef "
                                f"(single_clip, first_clip, all_clips, beat_by_beat)")
            tables.append(table)
        out = pd.concat(tables, ignore_index=True)
        first = ["sample_id", "patient_id", "split", "EF", "EF_pred"]
        return out[first + [c for c in out.columns if c not in first]]

    def _beat_by_beat(self, cfg: DictConfig, run: Run, model: nn.Module, data: TaskData, test: EchoClips, tcfg,
                      rows: pd.DataFrame, table: pd.DataFrame) -> bool:
        """Fill ``table`` with beat-by-beat predictions (and write beats.csv); False when there is no curve."""
        found = data.extras.segmentation
        if found is None:
            log.warning("beat_by_beat skipped: no finished echonet_seg run with size.csv on this data (fingerprint "
                        "%s) under %s; run `cardiobench run --task echonet_seg` first, or set "
                        "eval.segmentation_run=RUN_DIR", data.extras.fingerprint,
                        Path(cfg.runs_root) / "echonet_seg")
            run.update_manifest(beat_by_beat={"skipped": "no echonet_seg run with size.csv on this data"})
            return False
        seg_run, sizes = found
        fps = rows["FPS"].to_numpy(float) if "FPS" in rows.columns else np.full(len(rows), 50.0)
        names = list(rows.FileName)

        def shard(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str], list[list[dict]]]:
            records: list[dict] = []
            pred, n_beats, fallback = predict_beats(model, test.videos_at(idx), tcfg, [names[i] for i in idx], sizes,
                                                    fps[idx], cfg.eval.max_beats, cfg.eval.clip_batch,
                                                    cfg.eval.all_clips_stride, records=records)
            return pred, n_beats, fallback, [[r for r in records if r["sample_id"] == names[i]] for i in idx]

        pred, n_beats, fallback, per_video = map_shards(shard, len(test))
        table["EF_pred"], table["beats"], table["beat_fallback"] = pred, n_beats, fallback
        run.write_table("beats.csv", pd.DataFrame([r for video in per_video for r in video],
                                                  columns=["sample_id", "beat", "es_frame", "clip_start", "EF_pred"]))
        run.update_manifest(beat_by_beat={"segmentation_run": str(Path(seg_run).resolve()), "videos": len(rows),
                                          "videos_without_beat": int((n_beats == 0).sum())})
        return True
