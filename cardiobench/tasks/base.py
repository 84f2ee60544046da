"""The task protocol: the few hooks a task spec cannot say.

A task is a subclass of :class:`Task` registered with ``@register_task("name")`` (its spec is
``<name>.yaml`` in its family's folder, or ``task/<name>.yaml`` in an include-path folder). The run itself is
generic (:func:`cardiobench.pipeline.run_task`)::

    data  = task.datasets(cfg, run, source)         # read, validate, decode once, split
    model = task.build_model(cfg, data)
    fit(model, data.train, data.val, step=task.training_step, loss=task.loss(cfg), ...)
    rows  = task.predict(cfg, run, model, data)     # predictions.csv rows (+ artifacts in the run)
    rows  = task.derive(rows, cfg)                  # optional: e.g. clinical indices

Datasets yield dict batches (``{"x": ..., "y": ...}`` by default); ``training_step`` turns one
batch into a loss, so dict outputs, several heads and contrastive losses need no other change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd
import torch
import torch.nn as nn
from omegaconf import DictConfig
from torch.utils.data import Dataset

from ..data.source import DataSource
from ..runs import Run
from .prepare import Prepared


@dataclass
class TaskData:
    """What ``datasets`` built: the training and validation sets, the prepared data (usable samples,
    their arrays, the typed split: :func:`cardiobench.tasks.prepare.prepare`), and ``extras``, whatever
    else ``predict`` needs, as a dataclass of the task's own."""

    train: Dataset
    val: Dataset
    prepared: Prepared | None = None
    extras: Any = None
    collate: Callable | None = None  # the loaders' collate_fn (None: torch's default)


class Task:
    """Base class of a task's hooks; ``name`` is set by :func:`register_task`."""

    name: str = ""

    def datasets(self, cfg: DictConfig, run: Run, source: DataSource) -> TaskData:
        """Read and validate the data (problems into the run's skipped.csv), build TRAIN and VAL."""
        raise NotImplementedError

    def build_model(self, cfg: DictConfig, data: TaskData) -> nn.Module:
        """The model of ``cfg.model`` from the model registry (random init or local weights)."""
        from ..models import build

        return build(cfg.model.name, **{k: v for k, v in cfg.model.items() if k != "name"})

    def loss(self, cfg: DictConfig) -> Callable:
        """The training criterion named by ``train.loss``."""
        from ..losses import LOSSES

        return LOSSES.get(str(cfg.train.loss))

    def training_step(self, model: nn.Module, batch: dict, loss_fn: Callable
                      ) -> torch.Tensor | tuple[torch.Tensor, dict[str, float]]:
        """One batch's loss: ``loss_fn(model(x), y)`` for a single-output model. A step may also return
        the loss's components (``(loss, {name: value})``): history.csv gets ``train_loss_<name>``."""
        return loss_fn(model(batch["x"]).squeeze(1).float(), batch["y"])

    def validation_metrics(self, model: nn.Module, data: TaskData, device: str) -> dict[str, float]:
        """Extra per-epoch validation numbers (e.g. ``val_dice``) for ``train.select_by``; none by default."""
        return {}

    def predict(self, cfg: DictConfig, run: Run, model: nn.Module, data: TaskData, device: str) -> pd.DataFrame:
        """The scored split's predictions.csv rows; artifacts (masks, curves) go into the run folder.

        Under torchrun every rank calls it (``run`` is a scratch folder on ranks other than 0, and
        rank 0's rows are kept): wrap the forward passes in ``distributed.map_shards`` to share them
        out; a task that does not simply computes everything on every rank."""
        raise NotImplementedError

    def derive(self, rows: pd.DataFrame, cfg: DictConfig) -> pd.DataFrame:
        """Quantities derived from the predictions (e.g. clinical indices); none by default."""
        return rows


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator registering a :class:`Task` subclass under ``name``."""
    from .registry import TASKS

    def deco(cls: type[Task]) -> type[Task]:
        if not issubclass(cls, Task):
            raise TypeError(f"{cls.__name__} must subclass cardiobench.tasks.Task")
        cls.name = name
        return TASKS.register(name, cls)
    return deco


def registered() -> dict[str, type[Task]]:
    """The tasks imported so far."""
    from .registry import TASKS

    return TASKS.loaded()
