"""The training loop: seeded, deterministic on CPU, resumable at every epoch boundary.

Read it top to bottom: build the optimiser and schedule, restore ``last.pt`` when resuming, then
for each epoch train, validate, keep ``best.pt`` by validation loss and write ``last.pt``.
"""
from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .io import atomic_path

log = logging.getLogger("cardiobench")


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; ask torch for deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def _worker_init(worker_id: int) -> None:
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def make_loader(ds: Dataset, batch_size: int, shuffle: bool, seed: int, workers: int = 0) -> DataLoader:
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=workers, generator=g,
                      worker_init_fn=_worker_init, drop_last=False, persistent_workers=False)


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_step_period: int | None = 15
    lr_gamma: float = 0.1
    schedule: str = "step"  # "step" (StepLR, EchoNet) or "cosine" (annealed to 0 over the epochs)
    num_workers: int = 0
    seed: int = 0
    amp: bool = False
    device: str = "cpu"
    progress: bool = True
    extra: dict = field(default_factory=dict)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (sgd, adamw)")


def _save(path: Path, obj: dict) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(obj, tmp)


def run_epoch(model: nn.Module, loader: DataLoader, loss_fn: Callable, cfg: TrainConfig,
              optimizer: torch.optim.Optimizer | None, desc: str) -> float:
    """One pass over ``loader``; trains when an optimizer is given. Returns the mean loss."""
    train = optimizer is not None
    model.train(train)
    device = torch.device(cfg.device)
    scaler = torch.amp.GradScaler(enabled=cfg.amp and device.type == "cuda")
    total, n = 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not cfg.progress, unit="batch")
    with torch.set_grad_enabled(train):
        for x, y in bar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=cfg.amp and device.type == "cuda"):
                loss = loss_fn(model(x).squeeze(1).float(), y)
            if train:
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            total += loss.item() * len(y)
            n += len(y)
            bar.set_postfix(loss=f"{total / n:.3g}")
    return total / max(n, 1)


def fit(model: nn.Module, train_ds: Dataset, val_ds: Dataset, cfg: TrainConfig, ckpt_dir: Path,
        loss_fn: Callable = nn.functional.mse_loss, resume: bool = False,
        on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
    """Train ``model`` in place; on return it holds the best-validation-loss weights.

    ``last.pt`` (model, optimiser, schedule, epoch, history) is written atomically after every
    epoch, so a run killed at any moment resumes from its last finished epoch with ``resume``.
    Each epoch's shuffling and clip sampling are seeded from ``(seed, epoch)``, which makes a
    resumed run identical to an uninterrupted one.
    """
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last, best = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    device = torch.device(cfg.device)
    model.to(device)
    optimizer = build_optimizer(model, cfg)
    if cfg.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1))
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step_period or 10**9, cfg.lr_gamma)
    history: list[dict] = []
    start, best_loss = 0, float("inf")

    if resume and last.is_file():
        state = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, best_loss, history = state["epoch"], state["best_loss"], state["history"]
        log.info("resumed from %s at epoch %d (best val loss %.4g)", last, start, best_loss)

    for epoch in range(start, cfg.epochs):
        t0 = time.time()
        for ds in (train_ds, val_ds):
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        train_loader = make_loader(train_ds, cfg.batch_size, True, cfg.seed * 100_003 + epoch, cfg.num_workers)
        val_loader = make_loader(val_ds, cfg.batch_size, False, 0, cfg.num_workers)
        train_loss = run_epoch(model, train_loader, loss_fn, cfg, optimizer, f"epoch {epoch + 1}/{cfg.epochs} train")
        train_seconds = time.time() - t0
        val_loss = run_epoch(model, val_loader, loss_fn, cfg, None, f"epoch {epoch + 1}/{cfg.epochs} val")
        scheduler.step()
        record = dict(epoch=epoch + 1, train_loss=train_loss, val_loss=val_loss,
                      lr=optimizer.param_groups[0]["lr"], seconds=round(time.time() - t0, 2),
                      train_clips_per_s=round(len(train_ds) / max(train_seconds, 1e-9), 2))
        history.append(record)
        if val_loss < best_loss:
            best_loss = val_loss
            _save(best, {"model": model.state_dict(), "epoch": epoch + 1, "val_loss": val_loss})
        _save(last, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "best_loss": best_loss,
                     "history": history})
        log.info("epoch %d/%d  train loss %.4g  val loss %.4g  (%.1fs)%s", epoch + 1, cfg.epochs, train_loss,
                 val_loss, record["seconds"], "  *best*" if val_loss == best_loss else "")
        if on_epoch:
            on_epoch(record)

    if best.is_file():
        model.load_state_dict(torch.load(best, map_location=device, weights_only=True)["model"])
    return history


@torch.no_grad()
def predict(model: nn.Module, ds: Dataset, cfg: TrainConfig, desc: str = "predict") -> np.ndarray:
    """Model outputs for every item of ``ds`` in order, shape (N, outputs)."""
    model.eval()
    device = torch.device(cfg.device)
    out = []
    for x, _ in tqdm(make_loader(ds, cfg.batch_size, False, 0, cfg.num_workers), desc=desc, leave=False,
                     disable=not cfg.progress, unit="batch"):
        with torch.autocast(device.type, enabled=cfg.amp and device.type == "cuda"):
            out.append(model(x.to(device)).float().cpu().numpy())
    return np.concatenate(out).reshape(len(ds), -1)
