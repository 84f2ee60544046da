"""The training loop: seeded, deterministic on CPU, resumable at every epoch boundary.

Read it top to bottom: build the optimiser and schedule, restore ``last.pt`` when resuming, then
for each epoch train, validate, keep ``best.pt`` by validation loss and write ``last.pt``.
"""
from __future__ import annotations

import logging
import math
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
    schedule: str = "step"  # "step" (StepLR, EchoNet), "cosine" (per epoch) or "warmup_cosine" (per step)
    warmup_fraction: float = 0.0  # warmup_cosine: linear warm-up over this fraction of all optimiser steps
    head_lr: float | None = None  # models with param_groups(): lr for the head, ``lr`` for the backbone
    accumulate: int = 1           # gradient accumulation: optimiser step every ``accumulate`` batches
    grad_clip: float | None = None  # max global gradient norm
    patience: int | None = None   # early stopping after this many evaluations without a better val loss
    num_workers: int = 0
    seed: int = 0
    amp: bool = False
    device: str = "cpu"
    progress: bool = True
    extra: dict = field(default_factory=dict)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = model.param_groups(cfg.lr, cfg.head_lr) if cfg.head_lr and hasattr(model, "param_groups") \
        else model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (sgd, adamw)")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """(scheduler, per_step): epoch-wise StepLR/cosine, or step-wise linear warm-up then cosine."""
    if cfg.schedule == "warmup_cosine":
        total = max(1, steps_per_epoch * cfg.epochs)
        warm = int(round(cfg.warmup_fraction * total))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), True
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1)), False
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step_period or 10**9, cfg.lr_gamma), False
    raise ValueError(f"unknown schedule {cfg.schedule!r} (step, cosine, warmup_cosine)")


def _save(path: Path, obj: dict) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(obj, tmp)


def amp_setting(cfg: TrainConfig) -> tuple[bool, torch.dtype]:
    """Mixed precision on CUDA only: bfloat16 where the GPU has it (Ampere and later), else float16."""
    if not (cfg.amp and torch.device(cfg.device).type == "cuda"):
        return False, torch.float32
    return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def run_epoch(model: nn.Module, loader: DataLoader, loss_fn: Callable, cfg: TrainConfig,
              optimizer: torch.optim.Optimizer | None, desc: str, scheduler=None) -> float:
    """One pass over ``loader``; trains when an optimizer is given. Returns the mean loss.

    Training steps the optimiser every ``cfg.accumulate`` batches (and at the end), clipping the
    global gradient norm first when ``cfg.grad_clip`` is set; a per-step ``scheduler`` steps with it.
    """
    train = optimizer is not None
    model.train(train)
    device = torch.device(cfg.device)
    use_amp, amp_dtype = amp_setting(cfg)
    # bf16 keeps fp32's exponent range: no loss scaling, so no optimiser steps skipped on overflow.
    scaler = torch.amp.GradScaler(enabled=use_amp and amp_dtype == torch.float16)
    total, n = 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not cfg.progress, unit="batch")
    if train:
        optimizer.zero_grad(set_to_none=True)
    with torch.set_grad_enabled(train):
        for i, (x, y) in enumerate(bar):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = loss_fn(model(x).squeeze(1).float(), y)
            if train:
                scaler.scale(loss / cfg.accumulate).backward()
                if (i + 1) % cfg.accumulate == 0 or i + 1 == len(loader):
                    if cfg.grad_clip:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    if scheduler is not None:
                        scheduler.step()
            total += loss.item() * len(y)
            n += len(y)
            bar.set_postfix(loss=f"{total / n:.3g}")
    return total / max(n, 1)


def _since_best(history: list[dict]) -> int:
    return len(history) - 1 - min(range(len(history)), key=lambda i: history[i]["val_loss"])


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
    steps_per_epoch = math.ceil(math.ceil(len(train_ds) / cfg.batch_size) / cfg.accumulate)
    scheduler, per_step = build_scheduler(optimizer, cfg, steps_per_epoch)
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
        if cfg.patience and history and _since_best(history) >= cfg.patience:
            break  # a resumed run that had already stopped early
        t0 = time.time()
        for ds in (train_ds, val_ds):
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        train_loader = make_loader(train_ds, cfg.batch_size, True, cfg.seed * 100_003 + epoch, cfg.num_workers)
        val_loader = make_loader(val_ds, cfg.batch_size, False, 0, cfg.num_workers)
        train_loss = run_epoch(model, train_loader, loss_fn, cfg, optimizer, f"epoch {epoch + 1}/{cfg.epochs} train",
                               scheduler if per_step else None)
        train_seconds = time.time() - t0
        val_loss = run_epoch(model, val_loader, loss_fn, cfg, None, f"epoch {epoch + 1}/{cfg.epochs} val")
        if not per_step:
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
        if cfg.patience and _since_best(history) >= cfg.patience:
            log.info("early stopping: no better validation loss in %d epochs", _since_best(history))
            break

    if best.is_file():
        model.load_state_dict(torch.load(best, map_location=device, weights_only=True)["model"])
    return history


def enable_dropout(model: nn.Module) -> int:
    """Switch only the dropout layers to training mode (MC-dropout); returns how many there are."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    for m in layers:
        m.train()
    return len(layers)


@torch.no_grad()
def predict(model: nn.Module, ds: Dataset, cfg: TrainConfig, desc: str = "predict",
            mc_samples: int = 0) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Model outputs for every item of ``ds`` in order, shape (N, outputs).

    With ``mc_samples > 0``: MC-dropout, that many stochastic passes per batch with only the
    dropout layers active; returns (mean, std) over the passes.
    """
    model.eval()
    if mc_samples and enable_dropout(model) == 0:
        raise ValueError("MC-dropout asked for, but the model has no dropout layers")
    device = torch.device(cfg.device)
    means, stds = [], []
    for x, _ in tqdm(make_loader(ds, cfg.batch_size, False, 0, cfg.num_workers), desc=desc, leave=False,
                     disable=not cfg.progress, unit="batch"):
        x = x.to(device)
        use_amp, amp_dtype = amp_setting(cfg)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            if mc_samples:
                draws = torch.stack([model(x).float() for _ in range(mc_samples)])
                means.append(draws.mean(0).cpu().numpy())
                stds.append(draws.std(0).cpu().numpy())
            else:
                means.append(model(x).float().cpu().numpy())
    model.eval()
    mean = np.concatenate(means).reshape(len(ds), -1)
    return (mean, np.concatenate(stds).reshape(len(ds), -1)) if mc_samples else mean
