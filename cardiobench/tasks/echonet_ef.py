"""Task echonet_ef: ejection fraction regression from apical-4-chamber echo video.

Protocol: train on TRAIN, select the epoch by VAL loss, predict TEST. EchoNet-Dynamic has one
video per patient, so ``patient_id`` is the video's FileName unless the data says otherwise.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats as scipy_stats
from omegaconf import DictConfig

from .. import stats
from ..data import echonet_dynamic
from ..stats.roc import auc_ci, auc_paired_test
from ..data.clips import EchoClips, intensity_stats
from ..data.problems import Problem
from ..errors import DataError
from ..io import write_text
from ..models import build
from ..models.video_resnet import channels_last
from ..runs import Run
from ..losses import LOSSES
from ..train import TrainConfig, fit, predict
from .data_source import DataSource, decode, report_problems

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
EXTRA_DEFINITIONS = {"auc_ef50": "AUC of -EF_pred for true EF < 50 % (DeLong CI, pROC ci.auc)"}


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
                       progress=cfg.progress, warmup_fraction=t.get("warmup_fraction", 0.0),
                       head_lr=t.get("head_lr"), accumulate=int(t.get("accumulate", 1)),
                       grad_clip=t.get("grad_clip"), patience=t.get("patience"))


def run(cfg: DictConfig, run: Run, source: DataSource, device: str) -> pd.DataFrame:
    """Train and predict; returns predictions.csv's table (also written into ``run``)."""
    ds = echonet_dynamic.read(source.root)
    problems: list[Problem] = list(ds.problems)
    samples = ds.samples
    videos, decode_problems = decode(cfg, list(samples.FileName), list(samples.path), cfg.clip.size)
    problems += decode_problems
    ok = np.array([v is not None for v in videos])
    samples = samples[ok].reset_index(drop=True)
    videos = [v for v in videos if v is not None]
    report_problems(run.path, problems)

    split = samples.Split.to_numpy()
    idx = {k: np.flatnonzero(split == k) for k in echonet_dynamic.SPLITS}
    for k, v in idx.items():
        if len(v) == 0:
            raise DataError(f"{source.root}: no usable {k} videos after validation")
    ef = samples.EF.to_numpy(dtype=np.float32)
    mean, sd = intensity_stats([videos[i] for i in idx["TRAIN"]])

    def clips(k: str, seed: int) -> EchoClips:
        return EchoClips([videos[i] for i in idx[k]], ef[idx[k]], cfg.clip.frames, cfg.clip.period, mean, sd, seed,
                         normalize=cfg.clip.get("normalize", "dataset"), layout=cfg.clip.get("layout", "CTHW"))

    bias_cfg = cfg.train.get("output_bias")
    bias = float(ef[idx["TRAIN"]].mean()) if bias_cfg == "train_mean" else (
        float(bias_cfg) if bias_cfg is not None else None)
    model_kw = {k: v for k, v in cfg.model.items() if k != "name"}
    model = build(cfg.model.name, output_bias=bias, **model_kw)
    tcfg = train_config(cfg, device)
    loss_name = cfg.train.get("loss", "mse")
    if loss_name not in LOSSES:
        raise DataError(f"train.loss must be one of {', '.join(LOSSES)}, not {loss_name!r}")
    log.info("model %s (%.2fM parameters), %d/%d/%d TRAIN/VAL/TEST videos, clips %dx%dx%d every %d frames",
             cfg.model.name, sum(p.numel() for p in model.parameters()) / 1e6, len(idx["TRAIN"]), len(idx["VAL"]),
             len(idx["TEST"]), cfg.clip.frames, cfg.clip.size, cfg.clip.size, cfg.clip.period)

    # Found (and a bad segmentation_run refused) before training, not after it.
    found = segmentation_sizes(cfg, source) if "beat_by_beat" in eval_modes(cfg) else None
    history = fit(model, clips("TRAIN", cfg.seed), clips("VAL", cfg.seed + 1), tcfg, run.checkpoints,
                  loss_fn=LOSSES[loss_name], resume=bool(cfg.resume),
                  on_epoch=lambda rec: run.update_manifest(epochs_done=rec["epoch"]))
    pd.DataFrame(history).to_csv(run.path / "history.csv", index=False)
    model = channels_last(model)

    test = clips(cfg.task.split, cfg.seed + 2)
    rows = samples.iloc[idx[cfg.task.split]]
    patient = rows["PatientID"] if "PatientID" in rows.columns else rows.FileName
    tables = []
    for mode in eval_modes(cfg):
        table = pd.DataFrame({"sample_id": rows.FileName.to_numpy(), "patient_id": patient.to_numpy(),
                              "split": cfg.task.split, "EF": rows.EF.to_numpy(dtype=float), "mode": mode})
        if mode == "single_clip":
            mc = int(cfg.eval.get("mc_dropout", 0) or 0)
            torch.manual_seed(cfg.seed + 3)  # MC-dropout masks are part of the seeded run
            out = predict(model, test, tcfg, desc="predict TEST", mc_samples=mc)
            table["EF_pred"] = (out[0] if mc else out)[:, 0].astype(float)
            if mc:
                table["EF_pred_std"] = out[1][:, 0].astype(float)  # MC-dropout predictive SD over `mc` passes
                table["mc_passes"] = mc
        elif mode == "all_clips":
            stride = int(cfg.eval.get("all_clips_stride", 1))
            table["EF_pred"] = predict_all_clips(model, test, tcfg, stride, int(cfg.eval.get("clip_batch", 16)))
            table["clips_stride"] = stride
        elif mode == "beat_by_beat":
            if found is None:
                log.warning("beat_by_beat skipped: no finished echonet_seg run with size.csv on this data (fingerprint "
                            "%s) under %s; run `cardiobench run --task echonet_seg` first, or set "
                            "eval.segmentation_run=RUN_DIR", source.fingerprint, Path(cfg.runs_root) / "echonet_seg")
                run.update_manifest(beat_by_beat={"skipped": "no echonet_seg run with size.csv on this data"})
                continue
            seg_run, sizes = found
            fps = rows["FPS"].to_numpy(float) if "FPS" in rows.columns else np.full(len(rows), 50.0)
            per_beat: list[dict] = []
            pred, n_beats, fallback = predict_beats(model, test, tcfg, list(rows.FileName), sizes, fps,
                                                    int(cfg.eval.get("max_beats", 5)), int(cfg.eval.get("clip_batch", 16)),
                                                    int(cfg.eval.get("all_clips_stride", 1)), records=per_beat)
            table["EF_pred"], table["beats"], table["beat_fallback"] = pred, n_beats, fallback
            write_text(run.path / "beats.csv", pd.DataFrame(
                per_beat, columns=["sample_id", "beat", "es_frame", "clip_start", "EF_pred"]).to_csv(index=False))
            run.update_manifest(beat_by_beat={"segmentation_run": str(Path(seg_run).resolve()), "videos": len(rows),
                                              "videos_without_beat": int((n_beats == 0).sum())})
        else:
            raise DataError(f"eval mode {mode!r} is not available for echonet_ef (single_clip, all_clips, beat_by_beat)")
        tables.append(table)
    out = pd.concat(tables, ignore_index=True)
    return out[PREDICTION_COLUMNS + [c for c in out.columns if c not in PREDICTION_COLUMNS]]


def eval_modes(cfg: DictConfig) -> list[str]:
    """Evaluation modes in order; the first is the primary one (the leaderboard's and check's)."""
    modes = cfg.eval.get("modes") or [cfg.eval.get("mode", "single_clip")]
    return [str(m) for m in modes]


@torch.no_grad()
def predict_all_clips(model: torch.nn.Module, ds: EchoClips, tcfg: TrainConfig, stride: int = 1,
                      batch: int = 16) -> np.ndarray:
    """Mean prediction over every clip of each video (EchoNet's test-time all-clips averaging).

    Clips start every ``stride`` frames and are built ``batch`` at a time from the uint8 video, so
    memory stays bounded by one batch of float clips whatever the video's length.
    """
    from tqdm.auto import tqdm

    from ..memory import return_large_blocks

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


def segmentation_sizes(cfg: DictConfig, source: DataSource) -> tuple[Path, pd.DataFrame] | None:
    """(run folder, size.csv) of the segmentation run whose LV area curves drive beat-by-beat EF.

    ``eval.segmentation_run``: a run folder (or a size.csv), or ``auto`` for the newest finished
    ``echonet_seg`` run under ``runs_root`` on the same data (same fingerprint); None when none is found.
    """
    from ..runs import find_runs

    where = cfg.eval.get("segmentation_run", "auto")
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

    End-systoles come from the segmentation's area curve (:func:`cardiobench.data.beats.end_systoles`).
    A video with no area curve or no detected beat is predicted by all-clips averaging instead;
    returns (EF_pred, beats used, fallback reason or ""). ``records`` collects one dict per beat
    (sample_id, beat, es_frame, clip_start, EF_pred): the run's beats.csv.
    """
    from ..data import beats

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


EF_BINS = (0, 30, 40, 55, 70, 101)
HF_THRESHOLDS = (35, 40, 45, 50)


def ci_settings(cfg: DictConfig) -> dict:
    """The CI convention: ours (95 % BCa, 9 999 resamples) or the original EchoNet code's (90 %)."""
    ci = cfg.get("ci") or {}
    if ci.get("mode", "default") == "echonet":
        return dict(level=0.90, method="percentile", n_resamples=10000,
                    label="echonet: 5th-95th bootstrap percentiles, 10 000 resamples (a 90 % interval, as the original code)")
    return dict(level=ci.get("level", 0.95), method=ci.get("method", "bca"), n_resamples=ci.get("n_resamples", 9999),
                label="default")


def evaluate(pred: pd.DataFrame, cfg: DictConfig) -> dict:
    """metrics.json content from predictions alone.

    MAE, RMSE, R², Pearson r with patient-level bootstrap CIs; MAE per EF range; AUC of -EF_pred
    for true EF < 35/40/45/50 with DeLong CIs; with MC-dropout columns, the coverage of the
    nominal 90 % predictive intervals and the Spearman correlation of predicted SD with |error|.
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in pred.columns]
    if missing:
        raise DataError(f"predictions lack column(s) {', '.join(missing)}")
    modes = list(dict.fromkeys(pred["mode"].astype(str))) if "mode" in pred.columns else []
    if len(modes) > 1:  # primary mode at top level, every mode's MAE/RMSE/R² under by_mode
        out = evaluate(pred[pred["mode"].astype(str) == modes[0]], cfg)
        out["primary_mode"] = modes[0]
        out["by_mode"] = {m: {k: v for k, v in evaluate(pred[pred["mode"].astype(str) == m], cfg).items()
                              if k in cfg.task.metrics} for m in modes}
        if "beat_by_beat" in modes and "beats" in pred.columns:
            bb = pred[pred["mode"].astype(str) == "beat_by_beat"]
            none = bb.beats.to_numpy() == 0
            out["by_mode"]["beat_by_beat"]["beats"] = {
                "videos": len(bb), "videos_without_beat": int(none.sum()),
                "mean_beats_per_video": float(bb.beats[~none].mean()) if (~none).any() else None,
                "handling": "videos without a usable beat (no area curve, or no end-systole found on it) are "
                            "predicted by all-clips averaging and kept in every metric"}
        return out
    y, p = pred.EF.to_numpy(float), pred.EF_pred.to_numpy(float)
    groups = pred.patient_id.to_numpy() if pred.patient_id.duplicated().any() else None
    c = ci_settings(cfg)
    level, method, n_res = c["level"], c["method"], c["n_resamples"]
    unit = "patients" if groups is not None else "videos (one per patient)"
    out: dict = {}
    for name in [*cfg.task.metrics, "pearson_r"]:
        statistic = stats.pearson_r if name == "pearson_r" else name
        r = stats.bootstrap_ci(statistic, y, p, level=level, method=method, n_resamples=n_res, groups=groups, seed=0)
        out[name] = {**r.as_dict(), "resampled": unit, "ci_mode": c["label"],
                     "definition": cfg.task.metric_definitions.get(name, "Pearson correlation of EF_pred with EF")}
    # Heart failure with reduced EF: a LOWER predicted EF means disease, so the score is -EF_pred
    # (the AUC direction is fixed: larger score = positive class, never auto-flipped).
    for t in HF_THRESHOLDS:
        hf = (y < t).astype(int)
        key = f"auc_ef{t}"
        if 2 <= hf.sum() <= len(hf) - 2:
            r = auc_ci(hf, -p, groups=groups, level=level, n_resamples=n_res, method=method)
            out[key] = {**r, "definition": f"AUC of -EF_pred for true EF < {t} % (DeLong CI, pROC ci.auc; "
                                           f"patient bootstrap stratified by class when a patient has several rows)"}
        else:
            out[key] = {"value": None, "note": f"not computed: {int(hf.sum())} of {len(hf)} videos have EF < {t}"}
    bins = {}
    for a, b in zip(EF_BINS[:-1], EF_BINS[1:]):
        sel = (y >= a) & (y < b)
        name = f"{a}-{b}" if b <= 100 else f">={a}"
        if sel.sum() >= 2:
            r = stats.bootstrap_ci("mae", y[sel], p[sel], level=level, method=method, n_resamples=n_res, seed=0,
                                   groups=None if groups is None else groups[sel])
            bins[name] = {**r.as_dict(), "ci_mode": c["label"]}
        else:
            bins[name] = {"value": float(np.abs(y[sel] - p[sel]).mean()) if sel.any() else None, "n": int(sel.sum()),
                          "note": "fewer than 2 videos: no CI"}
    out["mae_by_ef_bin"] = bins
    if "EF_pred_std" in pred.columns:
        sd = pred.EF_pred_std.to_numpy(float)
        z = float(scipy_stats.norm.ppf(0.95))
        inside = np.abs(y - p) <= z * sd
        lo, hi = scipy_stats.binomtest(int(inside.sum()), len(inside)).proportion_ci(level, method="wilson")
        rho = scipy_stats.spearmanr(sd, np.abs(y - p))
        out["mc_coverage90"] = {"value": float(inside.mean()), "low": float(lo), "high": float(hi), "level": level,
                                "method": "wilson", "n": len(y),
                                "definition": "share of true EF inside EF_pred +/- 1.645 x MC-dropout SD (nominal 90 %)"}
        out["mc_spearman_sd_abs_error"] = {"value": float(rho.statistic), "p_value": float(rho.pvalue), "n": len(y),
                                           "definition": "Spearman correlation of MC-dropout SD with |error|"}
    out["_baselines"] = {"mean_predictor_mae": float(np.abs(y - y.mean()).mean())}
    return out


def compare(a: pd.DataFrame, b: pd.DataFrame, level: float = 0.95, n_resamples: int = 9999,
            alternative: str = "two-sided") -> list[dict]:
    """Paired comparison of two runs' predictions, aligned row by row on the same test videos.

    MAE/RMSE/R²: paired bootstrap of the difference (patients resampled jointly); AUC of -EF_pred
    for EF < 50: paired DeLong test (a paired patient bootstrap when patients have several rows).
    ``diff`` is always a - b; ``alternative`` ("greater": a - b > 0) makes every p-value one-sided.
    """
    y = a.EF.to_numpy(float)
    pa, pb = a.EF_pred.to_numpy(float), b.EF_pred.to_numpy(float)
    groups = a.patient_id.to_numpy() if a.patient_id.duplicated().any() else None
    out = []
    for name in ("mae", "rmse", "r2"):
        r = stats.paired_bootstrap_diff(name, y, pa, pb, groups=groups, level=level, n_resamples=n_resamples,
                                        alternative=alternative)
        out.append(dict(metric=name, a=r.estimate_a, b=r.estimate_b, diff=r.diff, low=r.low, high=r.high,
                        p_value=r.p_value, test=f"paired {r.method} bootstrap ({n_resamples} resamples)"))
    hf = (y < 50).astype(int)
    if 2 <= hf.sum() <= len(hf) - 2:
        r = auc_paired_test(hf, -pa, -pb, groups=groups, level=level, n_resamples=n_resamples,
                            alternative=alternative)
        out.append(dict(metric="auc_ef50", **r))
    return out
