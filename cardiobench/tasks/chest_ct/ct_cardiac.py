"""Task ct_cardiac: LVEF regression and aortic-stenosis detection from non-gated chest CT.

Protocol: the splits of labels.csv (train/val/test); every volume through Merlin's preprocessing
once (decode-once cache, float16); a two-headed 3D network (``{"lvef", "as_logit"}``) trained
with MSE on the standardised LVEF (TRAIN mean/SD) plus BCE on aortic stenosis, weighted 1:1 or by
learned homoscedastic uncertainty (Kendall et al. 2018); the epoch with the lowest validation loss
kept. The AS threshold is the one maximising Youden's J on VAL; it rides along in the TEST rows
(``as_threshold``) so sensitivity and specificity are computed from predictions.csv alone.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from scipy.special import expit
from torch.utils.data import Subset
from tqdm.auto import tqdm

from ...data.source import DataSource
from ...distributed import map_shards, pick_device
from ...errors import CardiobenchError
from ...runs import Run
from ..base import Task, TaskData, register_task
from ..prepare import cached_loader, prepare
from . import format as ct_echo
from . import latents as ct_latents
from .volumes import VolumeDataset, volume_augmentation

log = logging.getLogger("cardiobench")
# sex: labels.csv's optional column, for the task's subgroup table (empty where the data has none)
OUTPUT_COLUMNS = ["sample_id", "patient_id", "split", "lvef", "lvef_pred", "aortic_stenosis", "as_prob", "as_threshold",
                  "sex"]


class UncertaintyWeighted(nn.Module):
    """A two-task model whose losses are weighted by learned log-variances (Kendall, Gal & Cipolla,
    CVPR 2018): ``sum_i exp(-s_i) L_i + s_i``, the seed's "dynamic loss weight adjustment"."""

    def __init__(self, net: nn.Module, tasks: int = 2):
        super().__init__()
        self.net = net
        self.log_vars = nn.Parameter(torch.zeros(tasks))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(x)


def youden_threshold(label: np.ndarray, prob: np.ndarray) -> float:
    """The probability threshold maximising sensitivity + specificity - 1 (ties: the lowest)."""
    from sklearn.metrics import roc_curve

    label = np.asarray(label).astype(int)
    if not 0 < label.sum() < len(label):
        return 0.5
    fpr, tpr, thr = roc_curve(label, prob)
    j = tpr - fpr
    return float(min(1.0, thr[int(np.argmax(j))]))


def multitask_loss(model: nn.Module, lvef_z: torch.Tensor, as_logit: torch.Tensor, lvef_z_true: torch.Tensor,
                   as_true: torch.Tensor, weights: dict) -> torch.Tensor:
    """MSE on the standardised LVEF + BCE on aortic stenosis, weighted by ``weights`` or, when the
    model carries ``log_vars``, by learned uncertainty: ``sum_i exp(-s_i) L_i + s_i``."""
    losses = torch.stack([F.mse_loss(lvef_z.float().view(-1), lvef_z_true.float().view(-1)),
                          F.binary_cross_entropy_with_logits(as_logit.float().view(-1), as_true.float().view(-1))])
    s = getattr(model, "log_vars", None)
    if s is not None:
        return (torch.exp(-s) * losses + s).sum()
    return losses[0] * weights["lvef"] + losses[1] * weights["aortic_stenosis"]


@dataclass(frozen=True)
class CardiacExtras:
    """What prediction needs beyond the prepared data: the TRAIN LVEF's mean and SD (the model predicts
    standardised LVEF), the task weights, and the unaugmented VAL and TEST sets."""

    lvef_mean: float
    lvef_sd: float
    loss_weights: dict[str, float]
    eval: dict[str, VolumeDataset]


@register_task("ct_cardiac")
class CTCardiac(Task):
    def datasets(self, cfg: DictConfig, run: Run, source: DataSource) -> TaskData:
        samples, problems = ct_echo.index(source.root)
        image = OmegaConf.to_container(cfg.image, resolve=True)
        prepared = prepare(run, source, samples, problems, cached_loader(cfg, image),
                           sources=ct_echo.split_sources(source.root),
                           split_columns=["sample_id", "patient_id", "split", "line"])
        samples, arrays, by = prepared.samples, prepared.arrays, prepared.split
        lvef = samples.lvef.to_numpy(float)
        mean, sd = float(lvef[by["TRAIN"]].mean()), float(lvef[by["TRAIN"]].std() or 1.0)
        z = (lvef - mean) / sd

        volumes = [a["image"] for a in arrays]
        if cfg.autoencoder is not None:  # ct_medvae_latent: stage 2 trains on the autoencoder's latents
            device = pick_device(cfg.profile)
            ae = ct_latents.autoencoder(cfg, run, [volumes[i] for i in by["TRAIN"]], [volumes[i] for i in by["VAL"]],
                                        device)
            volumes = ct_latents.latents(cfg, ae, list(samples.sample_id), list(samples.path), volumes, device)

        augment = volume_augmentation(**OmegaConf.to_container(cfg.augment, resolve=True))

        def dataset(idx: np.ndarray, train: bool) -> VolumeDataset:
            return VolumeDataset([volumes[i] for i in idx],
                                 {"lvef_z": z[idx], "as": samples.aortic_stenosis.to_numpy(float)[idx]},
                                 label_weighted=train and bool(cfg.sampling.label_weighted), balance_on="as",
                                 seed=int(cfg.seed), augment=augment if train else None)

        shape = volumes[0].shape
        log.info("%d/%d/%d TRAIN/VAL/TEST inputs of %s values; TRAIN LVEF %.1f +/- %.1f %%, AS %d/%d",
                 len(by["TRAIN"]), len(by["VAL"]), len(by["TEST"]), "x".join(map(str, shape)), mean, sd,
                 int(samples.aortic_stenosis.to_numpy()[by["TRAIN"]].sum()), len(by["TRAIN"]))
        return TaskData(dataset(by.train, True), dataset(by.val, False), prepared,
                        CardiacExtras(lvef_mean=mean, lvef_sd=sd, loss_weights=self.loss(cfg),
                                      eval={"VAL": dataset(by.val, False), "TEST": dataset(by.test, False)}))

    def build_model(self, cfg: DictConfig, data: TaskData) -> nn.Module:
        net = super().build_model(cfg, data)
        return UncertaintyWeighted(net) if cfg.multitask.learned_weights else net

    def loss(self, cfg: DictConfig):
        if cfg.train.loss != "multitask":
            raise CardiobenchError(f"task ct_cardiac trains with train.loss=multitask (MSE + BCE), not {cfg.train.loss!r}")
        return dict(lvef=float(cfg.multitask.lvef_weight), aortic_stenosis=float(cfg.multitask.as_weight))

    def training_step(self, model: nn.Module, batch: dict, loss_fn: dict) -> torch.Tensor:
        out = model(batch["x"])
        return multitask_loss(model, out["lvef"], out["as_logit"], batch["lvef_z"], batch["as"], loss_fn)

    @torch.no_grad()
    def _outputs(self, model: nn.Module, ds: VolumeDataset | Subset, device: str, batch: int, desc: str,
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Standardised LVEF and the AS logit of every item of ``ds``."""
        model.eval()
        z, logit = [], []
        for i in tqdm(range(0, len(ds), batch), desc=desc, unit="batch", disable=not progress):
            x = torch.stack([ds[j]["x"] for j in range(i, min(i + batch, len(ds)))]).to(device)
            out = model(x)
            z.append(out["lvef"].float().view(-1).cpu())
            logit.append(out["as_logit"].float().view(-1).cpu())
        return torch.cat(z).numpy(), torch.cat(logit).numpy()

    def _shared_outputs(self, model: nn.Module, ds: VolumeDataset, device: str, batch: int, desc: str,
                        progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``_outputs`` of every item, the volumes shared out among the ranks under torchrun."""
        return map_shards(lambda idx: self._outputs(model, Subset(ds, idx), device, batch, desc, progress), len(ds))

    def validation_metrics(self, model: nn.Module, data: TaskData, device: str) -> dict[str, float]:
        """``val_loss`` (the training loss over VAL: the loop then skips its own pass), ``val_mae``
        (LVEF points) and ``val_as_auc`` of the VAL volumes."""
        from ...stats import auc

        extras: CardiacExtras = data.extras
        ds = extras.eval["VAL"]
        z, logit = self._outputs(model, ds, device, 4, "validate")
        with torch.no_grad():
            loss = multitask_loss(model, torch.from_numpy(z), torch.from_numpy(logit), torch.from_numpy(ds.targets["lvef_z"]),
                                  torch.from_numpy(ds.targets["as"]), extras.loss_weights)
        lvef = extras.lvef_mean + extras.lvef_sd * z
        true = extras.lvef_mean + extras.lvef_sd * ds.targets["lvef_z"]
        y = ds.targets["as"].astype(int)
        prob = expit(logit)
        out = {"val_loss": float(loss), "val_mae": float(np.abs(lvef - true).mean())}
        if 0 < y.sum() < len(y):
            out["val_as_auc"] = float(auc(y, prob))
        return out

    def predict(self, cfg: DictConfig, run: Run, model: nn.Module, data: TaskData, device: str) -> pd.DataFrame:
        samples, by, extras = data.prepared.samples, data.prepared.split, data.extras
        batch = max(1, int(cfg.train.batch_size))
        _, val_logit = self._shared_outputs(model, extras.eval["VAL"], device, batch, "predict VAL", cfg.progress)
        val_prob = expit(val_logit)
        threshold = youden_threshold(samples.aortic_stenosis.to_numpy()[by["VAL"]], val_prob)
        split = cfg.task.split
        z, logit = self._shared_outputs(model, extras.eval[split], device, batch, f"predict {split}",
                                        cfg.progress)
        prob = expit(logit)
        rows = samples.iloc[by[split]][["sample_id", "patient_id", "split", "lvef", "aortic_stenosis", "sex"]].copy()
        rows["lvef_pred"] = extras.lvef_mean + extras.lvef_sd * z
        rows["as_prob"], rows["as_threshold"] = prob, threshold
        log.info("aortic stenosis: VAL Youden threshold %.3f", threshold)
        return rows[OUTPUT_COLUMNS].reset_index(drop=True)
