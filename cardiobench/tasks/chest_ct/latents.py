"""Stage 1 of the MedVAE-latent baseline: the autoencoder and every volume's cached latent.

The autoencoder (``cfg.autoencoder.model``, :func:`cardiobench.tasks.chest_ct.medvae.medvae_autoencoder`) is
loaded from local weights or trained on the TRAIN volumes only (L1 reconstruction + 1e-6 KL, the
seeded, resumable loop of :mod:`cardiobench.train`, checkpoints under ``checkpoints/autoencoder/``,
its history in ``autoencoder_history.csv``). Each volume's posterior *mean* is then computed once
into the decode-once cache, keyed by the image preprocessing, the autoencoder's config and a hash of
its weights, so a changed volume or a different autoencoder is encoded again, never reused.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from ...data.cache import load_samples
from ...errors import CardiobenchError
from ...models import build
from ...runs import Run
from ...train import TrainConfig, fit
from .medvae import posterior_mean, vae_loss
from .volumes import VolumeDataset

log = logging.getLogger("cardiobench")
LATENT_FORMAT = "ct_echo-latent"


def _vae_step(model: nn.Module, batch: dict, kl_weight: float) -> torch.Tensor:
    return vae_loss(model, batch["x"], kl_weight=kl_weight)[0]


def _stage1_config(cfg: DictConfig, device: str) -> TrainConfig:
    t = cfg.autoencoder.train
    return TrainConfig(epochs=int(t.epochs), batch_size=int(t.batch_size), lr=float(t.lr), optimizer="adamw",
                       weight_decay=float(t.weight_decay), schedule="cosine", grad_clip=t.get("grad_clip"),
                       seed=int(cfg.seed), device=device, progress=bool(cfg.progress), amp=bool(cfg.profile.amp))


def autoencoder(cfg: DictConfig, run: Run, train: Sequence[np.ndarray], val: Sequence[np.ndarray],
                device: str) -> nn.Module:
    """The stage-1 autoencoder: local weights when ``autoencoder.model.weights`` is set, else trained on ``train``."""
    kwargs = OmegaConf.to_container(cfg.autoencoder.model, resolve=True)
    ae = build("medvae_autoencoder", **kwargs)
    if kwargs.get("weights"):
        log.info("stage 1: autoencoder weights from %s (not trained)", kwargs["weights"])
        return ae.to(device)
    n = sum(p.numel() for p in ae.parameters()) / 1e6
    log.info("stage 1: training the autoencoder (%.2fM parameters) on %d TRAIN volumes", n, len(train))
    history = fit(ae, VolumeDataset(train, {}), VolumeDataset(val, {}), _stage1_config(cfg, device),
                  run.checkpoints / "autoencoder", loss_fn=float(cfg.autoencoder.train.kl_weight),
                  resume=bool(cfg.resume), step=_vae_step)
    run.write_table("autoencoder_history.csv", pd.DataFrame(history))
    return ae


def weights_fingerprint(model: nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of a model's state dict: names, shapes, dtypes and bytes."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def latents(cfg: DictConfig, ae: nn.Module, names: Sequence[str], paths: Sequence[str],
            volumes: Sequence[np.ndarray], device: str) -> list[np.ndarray]:
    """Every volume's posterior mean ``[C, z, x, y]`` (float32), through the decode-once cache."""
    ae.eval()
    by_path = {str(Path(p)): v for p, v in zip(paths, volumes)}
    data = VolumeDataset(volumes, {})

    @torch.no_grad()
    def encode(path: Path):
        x = data.as_input(by_path[str(path)])[None].to(device)
        return {"latent": posterior_mean(ae, x)[0].float().cpu().numpy()}, {}

    key = dict(image=OmegaConf.to_container(cfg.image, resolve=True),
               autoencoder=OmegaConf.to_container(cfg.autoencoder.model, resolve=True),
               weights=weights_fingerprint(ae))
    out, problems = load_samples(LATENT_FORMAT, names, paths, key, encode,
                                 cfg.data.cache_dir if cfg.data.decoded_cache else None, workers=1,
                                 progress=bool(cfg.progress))
    if problems:  # the volumes were read and preprocessed already: a failure here is ours, not the data's
        raise CardiobenchError(f"encoding failed: {'; '.join(str(p) for p in problems[:3])}")
    z = [np.asarray(o["latent"], dtype=np.float32) for o in out]
    log.info("stage 2 input: %d latents of %s (posterior means), %.0fx fewer values than the volumes",
             len(z), "x".join(map(str, z[0].shape)), np.prod(np.shape(volumes[0])) / z[0].size)
    return z

