"""Task echonet_seg: left-ventricle segmentation of apical-4-chamber echo frames (EchoNet-Dynamic).

Protocol: masks are the traced end-diastolic (ED) and end-systolic (ES) outlines of each video
(VolumeTracings.csv); train on TRAIN, keep the epoch with the lowest VAL loss, score Dice on the
traced frames of TEST. Then segment every frame of the videos in ``eval.size_splits`` and write
the per-frame LV area curve, with the end-systoles found on it, to the run's ``size.csv`` (the
file of the same name the original code writes; ``echonet_ef``'s beat-by-beat mode reads it).

predictions.csv has one row per TEST video with pixel counts at the model's resolution for each
traced frame: ``true_*`` (traced area), ``pred_*`` (predicted area), ``inter_*`` (overlap), so every
Dice definition is recomputed from it alone.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from .. import stats
from ..data import beats, echonet_dynamic
from ..data.clips import intensity_stats
from ..data.frames import TracedFrame, TracedFrames, normalize_frames
from ..data.problems import Problem
from ..errors import DataError
from ..io import write_text
from ..losses import LOSSES
from ..models import build
from ..runs import Run
from ..train import TrainConfig, fit
from .data_source import DataSource, decode, report_problems
from .echonet_ef import ci_settings, normalize_id, train_config  # noqa: F401  (normalize_id: the task API)

log = logging.getLogger("cardiobench")

PHASES = ("ED", "ES")
PREDICTION_COLUMNS = ["sample_id", "patient_id", "split",
                      *[f"{c}_{ph}" for ph in PHASES for c in ("frame", "true", "pred", "inter")]]
SIZE_COLUMNS = ["Filename", "Split", "Frame", "Size", "HumanLarge", "HumanSmall", "ComputerSmall"]
FIGURES = {"kind": "segmentation"}
COMPARED = {"dice": "paired bootstrap"}


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


def run(cfg: DictConfig, run: Run, source: DataSource, device: str) -> pd.DataFrame:
    """Train, score the traced TEST frames, and write every video's area curve (size.csv)."""
    ds = echonet_dynamic.read(source.root)
    problems: list[Problem] = list(ds.problems)
    size = int(cfg.image.size)
    samples = ds.samples
    videos, decode_problems = decode(cfg, list(samples.FileName), list(samples.path), size)
    problems += decode_problems
    ok = np.array([v is not None for v in videos])
    samples = samples[ok].reset_index(drop=True)
    videos = [v for v in videos if v is not None]
    traced, trace_problems = traced_frames(ds, samples, videos, size)
    problems += trace_problems
    report_problems(run.path, problems)

    split = samples.Split.to_numpy()
    items = {k: [it for i in np.flatnonzero(split == k) for it in traced[i]] for k in echonet_dynamic.SPLITS}
    for k, v in items.items():
        if not v:
            raise DataError(f"{source.root}: no usable traced {k} frames (VolumeTracings.csv) after validation")
    mean, sd = intensity_stats([videos[i] for i in np.flatnonzero(split == "TRAIN")])
    model_kw = {k: v for k, v in cfg.model.items() if k != "name"}
    model = build(cfg.model.name, **model_kw)
    tcfg = train_config(cfg, device)
    loss_name = cfg.train.get("loss", "bce_sum")
    if loss_name not in LOSSES:
        raise DataError(f"train.loss must be one of {', '.join(LOSSES)}, not {loss_name!r}")
    log.info("model %s (%.2fM parameters), %d/%d/%d traced TRAIN/VAL/TEST frames at %dx%d", cfg.model.name,
             sum(p.numel() for p in model.parameters()) / 1e6, len(items["TRAIN"]), len(items["VAL"]),
             len(items["TEST"]), size, size)
    history = fit(model, TracedFrames(videos, items["TRAIN"], mean, sd), TracedFrames(videos, items["VAL"], mean, sd),
                  tcfg, run.checkpoints, loss_fn=LOSSES[loss_name], resume=bool(cfg.resume),
                  on_epoch=lambda rec: run.update_manifest(epochs_done=rec["epoch"]))
    pd.DataFrame(history).to_csv(run.path / "history.csv", index=False)

    scored = cfg.task.split
    batch = int(cfg.eval.get("frame_batch", 64))
    rows = []
    for i in np.flatnonzero(split == scored):
        if not traced[i]:
            continue
        r = samples.iloc[i]
        rec = {"sample_id": r.FileName, "patient_id": str(r.get("PatientID", r.FileName)), "split": scored}
        for it in traced[i]:
            pred = segment(model, videos[i][it.frame][None], mean, sd, device)[0]
            truth = it.mask.astype(bool)
            rec.update({f"frame_{it.phase}": it.frame, f"true_{it.phase}": int(truth.sum()),
                        f"pred_{it.phase}": int(pred.sum()), f"inter_{it.phase}": int((pred & truth).sum())})
        rows.append(rec)
    write_sizes(run, model, samples, videos, traced, mean, sd, device, cfg, batch)
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)


def write_sizes(run: Run, model: torch.nn.Module, samples: pd.DataFrame, videos: list[np.ndarray],
                traced: list[list[TracedFrame]], mean: float, std: float, device: str, cfg: DictConfig,
                batch: int) -> None:
    """size.csv: per video and frame, the segmented LV area in pixels at the model's resolution,
    the human ED (HumanLarge) and ES (HumanSmall) frames, and the detected end-systoles (ComputerSmall)."""
    splits = [str(s).upper() for s in cfg.eval.get("size_splits", ["TEST"])]
    which = np.flatnonzero(samples.Split.isin(splits).to_numpy())
    parts = []
    for i in tqdm(which, desc="segment every frame", unit="video", disable=not cfg.progress):
        r = samples.iloc[i]
        area = segment(model, np.asarray(videos[i]), mean, std, device, batch).sum(axis=(1, 2))
        fps = float(r.get("FPS", 50.0) or 50.0)
        es = beats.end_systoles(area, fps)
        human = {it.phase: it.frame for it in traced[i]}
        n = len(area)
        frame = np.arange(n)
        parts.append(pd.DataFrame({"Filename": r.FileName, "Split": r.Split, "Frame": frame, "Size": area,
                                   "HumanLarge": (frame == human.get("ED", -1)).astype(int),
                                   "HumanSmall": (frame == human.get("ES", -1)).astype(int),
                                   "ComputerSmall": np.isin(frame, es).astype(int)}))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SIZE_COLUMNS)
    write_text(run.path / "size.csv", table.to_csv(index=False))
    log.info("wrote %s (%d videos of %s)", run.path / "size.csv", len(which), "/".join(splits))


def _video_dice(pred: pd.DataFrame, phases: tuple[str, ...]) -> np.ndarray:
    """Per video: the mean over ``phases`` of each traced frame's Dice."""
    d = [2 * pred[f"inter_{ph}"] / (pred[f"pred_{ph}"] + pred[f"true_{ph}"]) for ph in phases]
    return np.mean(np.column_stack(d), axis=1)


def evaluate(pred: pd.DataFrame, cfg: DictConfig) -> dict:
    """Dice of the traced TEST frames with patient-level bootstrap CIs.

    ``dice``/``dice_ed``/``dice_es``: pooled over pixels of all videos (the paper's definition);
    ``dice_mean``/``dice_mean_ed``/``dice_mean_es``: mean over videos of each video's Dice.
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in pred.columns]
    if missing:
        raise DataError(f"predictions lack column(s) {', '.join(missing)}")
    if pred[PREDICTION_COLUMNS[3:]].isna().any().any():
        raise DataError("predictions have empty pixel counts; every row needs both traced frames")
    groups = pred.patient_id.to_numpy() if pred.patient_id.duplicated().any() else None
    c = ci_settings(cfg)
    kw = dict(level=c["level"], method=c["method"], n_resamples=c["n_resamples"], groups=groups, seed=0)
    unit = "patients" if groups is not None else "videos (one per patient)"
    out: dict = {}
    for suffix, phases in (("", PHASES), ("_ed", ("ED",)), ("_es", ("ES",))):
        inter = sum(pred[f"inter_{ph}"].to_numpy(float) for ph in phases)
        total = sum(pred[f"pred_{ph}"].to_numpy(float) + pred[f"true_{ph}"].to_numpy(float) for ph in phases)
        which = "ED and ES" if len(phases) == 2 else phases[0]
        r = stats.bootstrap_ci("dice", inter, total, **kw)
        out[f"dice{suffix}"] = {**r.as_dict(), "resampled": unit, "ci_mode": c["label"],
                                "definition": f"Dice pooled over the pixels of all traced {which} frames: "
                                              f"2 sum|P & T| / (sum|P| + sum|T|) (the paper's definition)"}
        r = stats.bootstrap_ci("mean", _video_dice(pred, phases), **kw)
        out[f"dice_mean{suffix}"] = {**r.as_dict(), "resampled": unit, "ci_mode": c["label"],
                                     "definition": f"mean over videos of each video's Dice on its traced {which} "
                                                   f"frame{'s (their mean)' if len(phases) == 2 else ''}"}
    rel = (pred.pred_ED + pred.pred_ES - pred.true_ED - pred.true_ES) / (pred.true_ED + pred.true_ES)
    out["area_bias"] = {"value": float(rel.mean()), "n": len(pred),
                        "definition": "mean relative error of the predicted LV area on the traced frames"}
    return out


def compare(a: pd.DataFrame, b: pd.DataFrame, level: float = 0.95, n_resamples: int = 9999,
            alternative: str = "two-sided") -> list[dict]:
    """Paired bootstrap of the pooled Dice difference (a - b) on the same traced TEST frames."""
    def arrays(p: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return ((p.inter_ED + p.inter_ES).to_numpy(float),
                (p.pred_ED + p.true_ED + p.pred_ES + p.true_ES).to_numpy(float))

    groups = a.patient_id.to_numpy() if a.patient_id.duplicated().any() else None
    r = stats.paired_bootstrap_diff_rows("dice", arrays(a), arrays(b), groups=groups, level=level,
                                         n_resamples=n_resamples, alternative=alternative)
    return [dict(metric="dice", a=r.estimate_a, b=r.estimate_b, diff=r.diff, low=r.low, high=r.high,
                 p_value=r.p_value, test=f"paired {r.method} bootstrap ({n_resamples} resamples)")]
