"""Task echonet_ef: ejection fraction regression from apical-4-chamber echo video.

Protocol: train on TRAIN, select the epoch by VAL loss, predict TEST. EchoNet-Dynamic has one
video per patient, so ``patient_id`` is the video's FileName unless the data says otherwise.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from .. import stats
from ..data import echonet_dynamic
from ..data.clips import EchoClips, intensity_stats, load_videos
from ..data.problems import Problem, problems_frame
from ..errors import DataError
from ..models import build
from ..runs import Run
from ..train import TrainConfig, fit, predict
from .data_source import DataSource

log = logging.getLogger("cardiobench")

PREDICTION_COLUMNS = ["sample_id", "patient_id", "split", "EF", "EF_pred"]
# What a predictions file made outside cardiobench must hold (``cardiobench evaluate --predictions``).
EXTERNAL_COLUMNS = {"sample_id": "the video's FileName, with or without .avi",
                    "EF_pred": "predicted ejection fraction, percent"}


# What the leaderboard draws for this task (cardiobench.report.plots): a regression target with a
# disease threshold below which a sample is positive, and the error bins of the VideoMAE study.
FIGURES = {"kind": "regression", "target": "EF", "prediction": "EF_pred", "unit": "EF %",
           "positive_below": 50, "positive_name": "EF < 50 %", "bins": [0, 30, 40, 55, 70, 100]}
# metrics.json keys compared by `compare`/the leaderboard, with the test used for each.
COMPARED = {"mae": "paired bootstrap", "rmse": "paired bootstrap", "r2": "paired bootstrap",
            "auc_ef50": "paired DeLong"}


def normalize_id(sample_id: str) -> str:
    """EchoNet FileNames appear with and without the .avi extension; compare them without."""
    return echonet_dynamic._strip_avi(str(sample_id).strip())


def truth(root: Path, cfg: DictConfig) -> pd.DataFrame:
    """The scored split's ground truth: sample_id, patient_id, split, EF (one row per video)."""
    ds = echonet_dynamic.read(root, tracings=False)
    rows = ds.samples[ds.samples.Split == cfg.task.split]
    patient = rows["PatientID"] if "PatientID" in rows.columns else rows.FileName
    return pd.DataFrame({"sample_id": rows.FileName.to_numpy(), "patient_id": patient.astype(str).to_numpy(),
                         "split": cfg.task.split, "EF": rows.EF.to_numpy(dtype=float)})


def train_config(cfg: DictConfig, device: str) -> TrainConfig:
    t = cfg.train
    return TrainConfig(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, optimizer=t.optimizer,
                       momentum=t.get("momentum", 0.9), weight_decay=t.weight_decay,
                       lr_step_period=t.get("lr_step_period"), lr_gamma=t.get("lr_gamma", 0.1), schedule=t.get("schedule", "step"),
                       num_workers=t.num_workers, seed=cfg.seed, amp=bool(cfg.profile.amp), device=device,
                       progress=cfg.progress)


def run(cfg: DictConfig, run: Run, source: DataSource, device: str) -> pd.DataFrame:
    """Train and predict; returns predictions.csv's table (also written into ``run``)."""
    ds = echonet_dynamic.read(source.root)
    problems: list[Problem] = list(ds.problems)
    samples = ds.samples
    videos, decode_problems = load_videos(list(samples.path), cfg.clip.size, list(samples.FileName),
                                          progress=cfg.progress, workers=cfg.data.workers)
    problems += decode_problems
    ok = np.array([v is not None for v in videos])
    samples = samples[ok].reset_index(drop=True)
    videos = [v for v in videos if v is not None]
    if problems:
        problems_frame(problems).to_csv(run.path / "skipped.csv", index=False)
        for p in problems:
            log.warning("%s", p)
        log.warning("%d data problem(s); affected samples skipped, listed in %s", len(problems), run.path / "skipped.csv")

    split = samples.Split.to_numpy()
    idx = {k: np.flatnonzero(split == k) for k in echonet_dynamic.SPLITS}
    for k, v in idx.items():
        if len(v) == 0:
            raise DataError(f"{source.root}: no usable {k} videos after validation")
    ef = samples.EF.to_numpy(dtype=np.float32)
    mean, sd = intensity_stats([videos[i] for i in idx["TRAIN"]])

    def clips(k: str, seed: int) -> EchoClips:
        return EchoClips([videos[i] for i in idx[k]], ef[idx[k]], cfg.clip.frames, cfg.clip.period, mean, sd, seed)

    bias = float(ef[idx["TRAIN"]].mean()) if cfg.train.get("output_bias") == "train_mean" else None
    model_kw = {k: v for k, v in cfg.model.items() if k != "name"}
    model = build(cfg.model.name, output_bias=bias, **model_kw)
    tcfg = train_config(cfg, device)
    log.info("model %s (%.2fM parameters), %d/%d/%d TRAIN/VAL/TEST videos, clips %dx%dx%d every %d frames",
             cfg.model.name, sum(p.numel() for p in model.parameters()) / 1e6, len(idx["TRAIN"]), len(idx["VAL"]),
             len(idx["TEST"]), cfg.clip.frames, cfg.clip.size, cfg.clip.size, cfg.clip.period)

    history = fit(model, clips("TRAIN", cfg.seed), clips("VAL", cfg.seed + 1), tcfg, run.checkpoints,
                  resume=bool(cfg.resume),
                  on_epoch=lambda rec: run.update_manifest(epochs_done=rec["epoch"]))
    pd.DataFrame(history).to_csv(run.path / "history.csv", index=False)

    test = clips(cfg.task.split, cfg.seed + 2)
    pred = predict(model, test, tcfg, desc="predict TEST")[:, 0]
    rows = samples.iloc[idx[cfg.task.split]]
    patient = rows["PatientID"] if "PatientID" in rows.columns else rows.FileName
    return pd.DataFrame({"sample_id": rows.FileName.to_numpy(), "patient_id": patient.to_numpy(),
                         "split": cfg.task.split, "EF": rows.EF.to_numpy(dtype=float),
                         "EF_pred": pred.astype(float), "mode": cfg.eval.mode})


def evaluate(pred: pd.DataFrame, cfg: DictConfig) -> dict:
    """metrics.json content from predictions alone: MAE, RMSE, R² with patient-level bootstrap CIs."""
    missing = [c for c in PREDICTION_COLUMNS if c not in pred.columns]
    if missing:
        raise DataError(f"predictions lack column(s) {', '.join(missing)}")
    y, p = pred.EF.to_numpy(float), pred.EF_pred.to_numpy(float)
    groups = pred.patient_id.to_numpy() if pred.patient_id.duplicated().any() else None
    ci = cfg.get("ci") or {}
    level, method, n_res = ci.get("level", 0.95), ci.get("method", "bca"), ci.get("n_resamples", 9999)
    out: dict = {}
    for name in cfg.task.metrics:
        r = stats.bootstrap_ci(name, y, p, level=level, method=method, n_resamples=n_res, groups=groups, seed=0)
        out[name] = {**r.as_dict(), "resampled": "patients" if groups is not None else "videos (one per patient)",
                     "definition": cfg.task.metric_definitions.get(name, "")}
    # Heart failure with reduced EF: a LOWER predicted EF means disease, so the score is -EF_pred
    # (the AUC direction is fixed: larger score = positive class, never auto-flipped).
    hf = (y < 50).astype(int)
    if 2 <= hf.sum() <= len(hf) - 2:
        r = stats.delong_auc(hf, -p, level=level)
        out["auc_ef50"] = {"value": r.auc, "low": r.low, "high": r.high, "level": level, "method": "delong",
                           "n": len(y), "n_cases": r.n_cases, "n_controls": r.n_controls,
                           "definition": "AUC of -EF_pred for true EF < 50 % (DeLong CI, pROC ci.auc)"}
    else:
        out["auc_ef50"] = {"value": None, "note": f"not computed: {int(hf.sum())} of {len(hf)} videos have EF < 50"}
    out["_baselines"] = {"mean_predictor_mae": float(np.abs(y - y.mean()).mean())}
    return out


def compare(a: pd.DataFrame, b: pd.DataFrame, level: float = 0.95, n_resamples: int = 9999) -> list[dict]:
    """Paired comparison of two runs' predictions, aligned row by row on the same test videos.

    MAE/RMSE/R²: paired bootstrap of the difference (patients resampled jointly); AUC of -EF_pred
    for EF < 50: paired DeLong test. ``diff`` is always a - b.
    """
    y = a.EF.to_numpy(float)
    pa, pb = a.EF_pred.to_numpy(float), b.EF_pred.to_numpy(float)
    groups = a.patient_id.to_numpy() if a.patient_id.duplicated().any() else None
    out = []
    for name in ("mae", "rmse", "r2"):
        r = stats.paired_bootstrap_diff(name, y, pa, pb, groups=groups, level=level, n_resamples=n_resamples)
        out.append(dict(metric=name, a=r.estimate_a, b=r.estimate_b, diff=r.diff, low=r.low, high=r.high,
                        p_value=r.p_value, test=f"paired {r.method} bootstrap ({n_resamples} resamples)"))
    hf = (y < 50).astype(int)
    if 2 <= hf.sum() <= len(hf) - 2:
        r = stats.delong_test(hf, -pa, -pb, level=level)
        out.append(dict(metric="auc_ef50", a=r.auc_a, b=r.auc_b, diff=r.diff, low=r.low, high=r.high,
                        p_value=r.p_value, test="paired DeLong (pROC roc.test)"))
    return out
