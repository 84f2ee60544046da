"""The training loop: seeded, deterministic on CPU, resumable at every epoch boundary.

Read it top to bottom: build the optimiser and schedule, restore ``last.pt`` when resuming, then
for each epoch train, validate, keep ``best.pt`` by the selection score (``select_by``: the
validation loss, or a task's validation metric such as ``val_dice``) and write ``last.pt``.

Batches are dicts (``{"x": ..., "y": ...}`` by default); a task's ``step(model, batch, loss_fn)``
turns one into a loss, so several heads, dict outputs and contrastive losses fit the same loop.
Under ``torchrun`` (``cardiobench.distributed``) the model is wrapped in DistributedDataParallel, each
rank reads its shard of TRAIN through a ``DistributedSampler`` (``set_epoch`` every epoch; the batch size
is per process, as in torchvision's references), the training loss is averaged over all ranks, every
rank validates on the whole of VAL by itself (``distributed.solo``: so every rank takes the same selection
and early-stopping decisions), and rank 0 alone writes checkpoints (``model_without_ddp``), the others waiting for it.
"""
from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from . import distributed
from .config import TrainSchema
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


def make_loader(ds: Dataset, batch_size: int, shuffle: bool, seed: int, workers: int = 0,
                collate_fn: Callable | None = None, sampler=None, drop_last: bool = False) -> DataLoader:
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle if sampler is None else False, sampler=sampler,
                      num_workers=workers, generator=g, worker_init_fn=_worker_init, drop_last=drop_last,
                      persistent_workers=False, collate_fn=collate_fn)


def drops_lone_sample(model: nn.Module, n: int, batch_size: int) -> bool:
    """Whether an epoch of ``n`` training items should drop its last batch: it would hold one sample,
    and the model batch-normalises (BatchNorm cannot normalise a lone sample's pooled 1 x 1 features,
    e.g. DeepLabV3's ASPP pooling; a rank's shard under DDP can leave one where the whole set did not)."""
    return n > 1 and batch_size > 1 and n % batch_size == 1 and any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


Step = Callable[[nn.Module, dict, Callable], "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"]


def default_step(model: nn.Module, batch: dict, loss_fn: Callable) -> torch.Tensor:
    """``loss_fn(model(x), y)`` for a single-output model."""
    return loss_fn(model(batch["x"]).squeeze(1).float(), batch["y"])


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch (tensor, dict, list or tuple of them) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def batch_size_of(batch: Any) -> int:
    """How many samples a batch holds: the length of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return len(batch)
    values = batch.values() if isinstance(batch, dict) else batch
    return next(batch_size_of(v) for v in values if isinstance(v, (torch.Tensor, dict, list, tuple)))


@dataclass
class TrainConfig(TrainSchema):
    """The training loop's settings: the recipe's ``train`` section (:class:`cardiobench.config.TrainSchema`,
    where each setting and its default is declared once) plus what the run adds."""

    seed: int = 0
    amp: bool = False
    device: str = "cpu"
    progress: bool = True


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
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr,
                                                   total_steps=max(1, steps_per_epoch * cfg.epochs)), True
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1)), False
    if cfg.schedule == "cosine_restarts":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=cfg.lr_step_period or 10), False
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step_period or 10**9, cfg.lr_gamma), False
    raise ValueError(f"unknown schedule {cfg.schedule!r} (step, cosine, cosine_restarts, warmup_cosine, onecycle)")


def _save(path: Path, obj: dict) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(obj, tmp)


def amp_setting(cfg: TrainConfig) -> tuple[bool, torch.dtype]:
    """Mixed precision on CUDA only: bfloat16 where the GPU has it (Ampere and later), else float16."""
    if not (cfg.amp and torch.device(cfg.device).type == "cuda"):
        return False, torch.float32
    return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def train_config(cfg, device: str) -> TrainConfig:
    """The loop's settings from a resolved config (``train`` section, seed, profile, progress)."""
    section = OmegaConf.to_container(cfg.train, resolve=True)
    known = {f.name for f in fields(TrainSchema)}
    return TrainConfig(**{k: v for k, v in section.items() if k in known}, seed=int(cfg.seed),
                       amp=bool(cfg.profile.amp), device=device, progress=bool(cfg.progress))


def run_epoch(model: nn.Module, loader: DataLoader, loss_fn: Callable, cfg: TrainConfig,
              optimizer: torch.optim.Optimizer | None, desc: str, scheduler=None, step: Step = default_step,
              parts: dict[str, float] | None = None, reduce: bool = False) -> float:
    """One pass over ``loader``; trains when an optimizer is given. Returns the mean loss per sample
    (``reduce``: over the samples of every rank, for a loader that reads one rank's shard).

    A step may return ``(loss, {name: value})``, the loss's components (fVLM's loss per organ): each
    component's mean per sample, over the batches that had it, is written into ``parts``.

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
    part_sums: dict[str, list[float]] = {}
    bar = tqdm(loader, desc=desc, leave=False, disable=not cfg.progress, unit="batch")
    if train:
        optimizer.zero_grad(set_to_none=True)
    with torch.set_grad_enabled(train):
        for i, batch in enumerate(bar):
            batch = to_device(batch, device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = step(model, batch, loss_fn)
            loss, components = loss if isinstance(loss, tuple) else (loss, {})
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
            k = batch_size_of(batch)
            total += loss.item() * k
            n += k
            for name, value in components.items():
                acc = part_sums.setdefault(name, [0.0, 0])
                acc[0] += float(value) * k
                acc[1] += k
            bar.set_postfix(loss=f"{total / n:.3g}")
    if reduce and distributed.current().active:
        # the loss over every rank's samples; loss components stay this rank's (their names may differ by rank)
        sums = torch.tensor([total, n], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(sums)
        total, n = sums.tolist()
    if parts is not None:
        parts.update({name: s / c for name, (s, c) in part_sums.items()})
    return total / max(n, 1)


def _better(score: float, best: float, mode: str) -> bool:
    return score < best if mode == "min" else score > best


def _since_best(history: list[dict], key: str, mode: str) -> int:
    """Epochs since the best validated epoch (epochs without validation carry no ``key``)."""
    scored = [r for r in history if key in r]
    if not scored:
        return 0
    pick = min if mode == "min" else max
    return history[-1]["epoch"] - pick(scored, key=lambda r: r[key])["epoch"]


def _validate(model: nn.Module, loader: DataLoader, loss_fn: Callable, cfg: TrainConfig, step: Step,
              val_metrics: Callable[[nn.Module], dict[str, float]] | None, desc: str) -> dict[str, float]:
    """One epoch's validation numbers: ``val_loss`` (with ``val_loss_<part>``) and the task's own."""
    extra = val_metrics(model) if val_metrics is not None else {}
    if "val_loss" in extra:  # a task whose own validation pass yields the loss spares the loader a second pass
        return {"val_loss": extra.pop("val_loss"), **extra}
    parts: dict[str, float] = {}
    loss = run_epoch(model, loader, loss_fn, cfg, None, desc, step=step, parts=parts)
    return {"val_loss": loss, **{f"val_loss_{k}": v for k, v in parts.items()}, **extra}


def fit(model: nn.Module, train_ds: Dataset, val_ds: Dataset, cfg: TrainConfig, ckpt_dir: Path,
        loss_fn: Callable = nn.functional.mse_loss, resume: bool = False,
        on_epoch: Callable[[dict], None] | None = None, step: Step = default_step,
        val_metrics: Callable[[nn.Module], dict[str, float]] | None = None,
        collate_fn: Callable | None = None) -> list[dict]:
    """Train ``model`` in place; on return it holds the weights of the best epoch by ``cfg.select_by``.

    ``last.pt`` (model, optimiser, schedule, epoch, history) is written atomically after every
    epoch, so a run killed at any moment resumes from its last finished epoch with ``resume``.
    Each epoch's shuffling and clip sampling are seeded from ``(seed, epoch)``, which makes a
    resumed run identical to an uninterrupted one. ``val_metrics(model)`` adds a task's validation
    numbers (e.g. ``val_dice``) to each epoch's record, for ``select_by``; when they include
    ``val_loss`` (the same loss as training, over VAL) the loader's own validation pass is skipped.
    """
    if cfg.select_mode not in ("min", "max"):
        raise ValueError(f"select_mode must be 'min' or 'max', not {cfg.select_mode!r}")
    group = distributed.current()
    if group.main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    last, best = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    device = torch.device(cfg.device)
    model.to(device)
    if cfg.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    model_without_ddp = model  # what is saved and validated; under DDP the wrapped module
    if group.active:
        if cfg.sync_bn and device.type == "cuda":  # SyncBatchNorm has no CPU kernel
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model_without_ddp = model
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = build_optimizer(model_without_ddp, cfg)
    shard = math.ceil(len(train_ds) / group.world_size)  # what each rank reads (DistributedSampler pads)
    drop_last = drops_lone_sample(model_without_ddp, shard, cfg.batch_size)
    batches = shard // cfg.batch_size if drop_last else math.ceil(shard / cfg.batch_size)
    steps_per_epoch = math.ceil(batches / cfg.accumulate)
    scheduler, per_step = build_scheduler(optimizer, cfg, steps_per_epoch)
    history: list[dict] = []
    key, mode = cfg.select_by, cfg.select_mode
    start, best_score = 0, (float("inf") if mode == "min" else -float("inf"))

    if resume and last.is_file():
        state = torch.load(last, map_location=device, weights_only=False)
        model_without_ddp.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, best_score, history = state["epoch"], state["best_score"], state["history"]
        log.info("resumed from %s at epoch %d (best %s %.4g)", last, start, key, best_score)

    for epoch in range(start, cfg.epochs):
        if cfg.patience and history and _since_best(history, key, mode) >= cfg.patience:
            break  # a resumed run that had already stopped early
        t0 = time.time()
        for ds in (train_ds, val_ds):
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)
        # per-rank seeds from the run seed (rank 0 keeps the single-process one): dropout and augmentation differ
        torch.manual_seed(cfg.seed * 100_003 + epoch + group.rank * 1_000_003)
        sampler = None
        if group.active:
            sampler = DistributedSampler(train_ds, group.world_size, group.rank, shuffle=True, seed=cfg.seed * 100_003)
            sampler.set_epoch(epoch)
        train_loader = make_loader(train_ds, cfg.batch_size, True, cfg.seed * 100_003 + epoch, cfg.num_workers,
                                   collate_fn, sampler=sampler, drop_last=drop_last)
        val_loader = make_loader(val_ds, cfg.batch_size, False, 0, cfg.num_workers, collate_fn)
        train_parts: dict[str, float] = {}
        train_loss = run_epoch(model, train_loader, loss_fn, cfg, optimizer, f"epoch {epoch + 1}/{cfg.epochs} train",
                               scheduler if per_step else None, step, train_parts, reduce=True)
        train_seconds = time.time() - t0
        if not per_step:
            scheduler.step()
        record = dict(epoch=epoch + 1, train_loss=train_loss, **{f"train_loss_{k}": v for k, v in train_parts.items()})
        validate = (epoch + 1) % max(cfg.val_every, 1) == 0 or epoch + 1 == cfg.epochs
        if validate:
            with distributed.solo():  # every rank validates on all of VAL: a contrastive loss gathers no copies
                record.update(_validate(model_without_ddp, val_loader, loss_fn, cfg, step, val_metrics,
                                        f"epoch {epoch + 1}/{cfg.epochs} val"))
        if validate and key not in record:
            raise ValueError(f"train.select_by={key!r} is not a validation number of this task "
                             f"(it has {', '.join(k for k in record if k.startswith('val'))})")
        record.update(lr=optimizer.param_groups[0]["lr"], seconds=round(time.time() - t0, 2),
                      train_items_per_s=round(len(train_ds) / max(train_seconds, 1e-9), 2))
        history.append(record)
        improved = validate and _better(record[key], best_score, mode)
        if improved:
            best_score = record[key]
            if group.main:
                _save(best, {"model": model_without_ddp.state_dict(), "epoch": epoch + 1, key: record[key]})
        if group.main:
            _save(last, {"model": model_without_ddp.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "best_score": best_score,
                         "history": history})
        distributed.barrier()  # the other ranks read these files (resume, the best epoch at the end)
        shown = f"  val loss {record['val_loss']:.4g}" if validate else ""
        if validate and key != "val_loss":
            shown += f"  {key} {record[key]:.4g}"
        log.info("epoch %d/%d  train loss %.4g%s  (%.1fs)%s", epoch + 1, cfg.epochs, train_loss, shown,
                 record["seconds"], "  *best*" if improved else "")
        if on_epoch and group.main:
            on_epoch(record)
        if validate and cfg.patience and _since_best(history, key, mode) >= cfg.patience:
            log.info("early stopping: no better %s in %d epochs", key, _since_best(history, key, mode))
            break

    if best.is_file():
        model_without_ddp.load_state_dict(torch.load(best, map_location=device, weights_only=True)["model"])
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
    for batch in tqdm(make_loader(ds, cfg.batch_size, False, 0, cfg.num_workers), desc=desc, leave=False,
                      disable=not cfg.progress, unit="batch"):
        x = batch["x"].to(device)
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
