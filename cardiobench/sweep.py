"""Seed sweeps on Hydra's launchers: the leaderboard is rendered once, after the last job.

``cardiobench run --task T --multirun seed=0,1,2 hydra/launcher=joblib`` runs the jobs as parallel local
processes (``hydra-joblib-launcher``), ``hydra/launcher=submitit_slurm`` as SLURM jobs and
``submitit_local`` as local submitit jobs (``hydra-submitit-launcher``). Each job writes its own run
folder and skips the page; jobs that rendered as they finished would race each other for it (the site
lock keeps the page whole, but N renders of a growing set of runs are wasted work and the last one to
finish is not always the one that saw every run). Hydra calls ``on_multirun_end`` in the launching
process once every job has returned, and that renders the task's page from all runs under ``runs_root``.
"""
from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig


def in_sweep() -> bool:
    """Whether this process is a job of a Hydra multirun."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


class RenderAfterSweep(Callback):
    """Hydra callback (``hydra.callbacks.leaderboard`` in conf/config.yaml)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.get("report", True):
            return
        from .report import render_site, task_page_path

        render_site([config.runs_root], config.site_dir, tasks=[str(config.task.name)])
        print(f"leaderboard page: {task_page_path(config.site_dir, config.task.name).resolve()}")
