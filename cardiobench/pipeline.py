"""One run of one task, top to bottom: data -> model -> train -> predict (-> derive).

The task supplies the hooks (:class:`cardiobench.tasks.base.Task`); everything else is the same
for every task: the seeded, resumable training loop and the run folder's files.
"""
from __future__ import annotations

import logging

import pandas as pd
from omegaconf import DictConfig

from . import distributed
from .data.source import DataSource
from .models.weights import recording
from .runs import Run
from .spec import TaskSpec
from .tasks.base import Task
from .train import fit, train_config

log = logging.getLogger("cardiobench")


def run_task(task: Task, spec: TaskSpec, cfg: DictConfig, run: Run, source: DataSource, device: str
             ) -> pd.DataFrame | None:
    """Train and predict; returns predictions.csv's table (row keys, patient and split first).

    Under torchrun every rank trains and predicts its share of the scored items (``distributed.map_shards``
    in the task's ``predict``); a rank other than 0 gets a scratch ``run`` that reads rank 0's
    checkpoints, and returns None (rank 0 writes the whole split's predictions)."""
    # every weights file loaded (a stage-1 autoencoder's in datasets too) goes into the manifest as it
    # is read, so that a refused one is there as well
    with recording(lambda loaded: run.update_manifest(weights=loaded)):
        data = task.datasets(cfg, run, source)
        model = task.build_model(cfg, data)
    loss_fn = task.loss(cfg)
    log.info("model %s (%.2fM parameters)", cfg.model.name, sum(p.numel() for p in model.parameters()) / 1e6)
    history = fit(model, data.train, data.val, train_config(cfg, device), run.checkpoints,
                  loss_fn=loss_fn, resume=bool(cfg.resume),
                  on_epoch=lambda rec: run.update_manifest(epochs_done=rec["epoch"]),
                  step=task.training_step, val_metrics=lambda m: task.validation_metrics(m, data, device),
                  collate_fn=data.collate)
    main = distributed.current().main
    if main:
        run.write_table("history.csv", pd.DataFrame(history))
    predicted = task.predict(cfg, run, model, data, device)  # on every rank: tasks share out the forward passes
    if not main:
        return None
    rows = task.derive(predicted, cfg)
    missing = [c for c in [*spec.row_keys, spec.cluster, "split", *spec.targets] if c not in rows.columns]
    if missing:
        raise RuntimeError(f"task {spec.name!r} predicted rows without column(s) {', '.join(missing)}")
    first = [*spec.row_keys, spec.cluster, "split"]
    return rows[first + [c for c in rows.columns if c not in first]]
