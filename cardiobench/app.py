"""The Hydra entry of ``cardiobench run``: one resolved config -> one run folder -> metrics -> page."""
from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from . import distributed, tasks
from .config import CONF_DIR, PROJECT_DIR, finish, register_configs, spec_of
from .console import finish_run
from .data.source import resolve_source
from .distributed import pick_device
from .errors import CardiobenchError
from .evaluation import evaluate
from .io import sweep_temporaries
from .pipeline import run_task
from .runs import Run, default_run_dir, git_commit, is_run_folder, latest_unfinished, now_iso, versions
from .train import seed_everything

log = logging.getLogger("cardiobench")


def setup_logging(log_file) -> None:
    root = logging.getLogger("cardiobench")
    root.setLevel(logging.INFO)
    for h in list(root.handlers):
        root.removeHandler(h)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(console)
    if log_file is not None:
        fh = logging.FileHandler(log_file)
        fh.setFormatter(fmt)
        root.addHandler(fh)
    root.propagate = False


def execute(cfg: DictConfig) -> Run | None:
    """Run a resolved config end to end; the run folder is the only output. Under torchrun rank 0 does
    this, and every other rank trains beside it (``follow``) and returns None."""
    group = distributed.init(pick_device(cfg.profile))
    path = distributed.broadcast(_run_path(cfg) if group.main else None)  # one folder: rank 0's clock
    if not group.main:
        follow(cfg, path, group)
        return None
    return _execute(cfg, path, group)


def _run_path(cfg: DictConfig) -> Path:
    if cfg.run_dir:
        path = Path(cfg.run_dir)
    elif cfg.resume:
        path = latest_unfinished(cfg)
        if path is None:
            raise CardiobenchError("resume=true but no unfinished run of this task/baseline/profile/seed was found; "
                                   "give --run-dir")
    else:
        path = default_run_dir(cfg)
    return path


def follow(cfg: DictConfig, path: Path, group: distributed.Group) -> None:
    """A rank other than 0: train beside rank 0, reading its checkpoints; whatever the task writes
    while loading data goes to a scratch folder of this rank's, deleted at the end (not the run folder)."""
    logging.getLogger("cardiobench").setLevel(logging.WARNING)  # rank 0 reports
    if not distributed.broadcast(None):  # rank 0 has checked the run folder: nothing to do (finished)
        return
    cfg.run_dir = str(path)
    cfg.progress = False  # rank 0 shows progress
    if cfg.profile.threads:
        torch.set_num_threads(int(cfg.profile.threads))
    seed_everything(int(cfg.seed), deterministic=bool(cfg.profile.deterministic))
    device = distributed.device_of(pick_device(cfg.profile), group)
    spec = spec_of(cfg)
    scratch = Path(tempfile.mkdtemp(prefix=f"cardiobench-rank{group.rank}-"))
    try:
        # every checkpoint (the autoencoder's of a two-stage recipe too) is read from rank 0's folder
        run_task(tasks.get(spec.name), spec, cfg, Run(scratch, shared_checkpoints=Run(path).checkpoints),
                 resolve_source(cfg), device)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _execute(cfg: DictConfig, path: Path, group: distributed.Group) -> Run:
    run = Run(path)
    if run.finished and cfg.resume:
        log.info("%s already finished; nothing to resume", path)
        distributed.broadcast(False)
        return run
    if path.exists() and not path.is_dir():
        raise CardiobenchError(f"{path}: --run-dir names a file; a run folder is a folder (new, empty, or an "
                               f"interrupted run's with resume=true)")
    if path.exists() and any(path.iterdir()) and not cfg.resume:
        raise CardiobenchError(f"{path}: run folder exists and is not empty; use resume=true or another --run-dir")
    if cfg.resume and path.is_dir() and not is_run_folder(path):
        # resuming writes and sweeps here: never in a folder of the user's own files
        raise CardiobenchError(f"{path}: not a run folder (no config.yaml or manifest.json of a run), so there is "
                               f"nothing to resume and nothing there was changed; give the folder of an interrupted "
                               f"run, or an empty or new --run-dir")
    path.mkdir(parents=True, exist_ok=True)
    distributed.broadcast(True)  # the other ranks waited for the checks above and the folder
    cfg.run_dir = str(path)
    run.write_config(cfg)  # first: config.yaml is what makes the folder a run folder (and sweepable)
    setup_logging(run.log_file)
    for left in sweep_temporaries(path, marker="config.yaml") if cfg.resume else []:
        log.info("removed %s, left half-written by the interrupted run", left)

    if cfg.profile.threads:
        torch.set_num_threads(int(cfg.profile.threads))
    seed_everything(int(cfg.seed), deterministic=bool(cfg.profile.deterministic))
    device = distributed.device_of(pick_device(cfg.profile), group)
    spec = spec_of(cfg)
    task = tasks.get(spec.name)

    started = now_iso()
    t0 = time.time()
    run.update_manifest(task=spec.name, task_version=spec.version, baseline=cfg.baseline.name,
                        profile=cfg.profile.name, model=cfg.model.name, seed=int(cfg.seed), status="running",
                        started=run.manifest().get("started", started), versions=versions(),
                        git_commit=git_commit(PROJECT_DIR), device=device, threads=torch.get_num_threads(),
                        cpu_kernels=torch.backends.cpu.get_cpu_capability(), command=" ".join(sys.argv),
                        world_size=group.world_size, backend=group.backend)
    try:
        source = resolve_source(cfg)
        run.update_manifest(data={"root": str(source.root), "is_twin": source.is_twin,
                                  "fingerprint": source.fingerprint, "format": spec.format})
        predictions = run_task(task, spec, cfg, run, source, device)
        run.write_predictions(predictions)
        t_train = time.time() - t0
        metrics = evaluate(run.predictions(), spec, cfg.ci,  # from predictions.csv only, as `evaluate` does
                           source=str(run.predictions_file))
        run.write_metrics(metrics)
    except KeyboardInterrupt:
        run.update_manifest(status="interrupted", ended=now_iso())
        raise
    except Exception as exc:
        run.update_manifest(status="failed", ended=now_iso(), error=f"{type(exc).__name__}: {exc}")
        raise
    run.update_manifest(status="finished", ended=now_iso(), wall_seconds={"train_predict": round(t_train, 1),
                                                                         "total": round(time.time() - t0, 1)})
    return run


def run_and_report(cfg: DictConfig) -> None:
    """One run of a composed config: the run folder, then the metrics table and the leaderboard page."""
    try:
        run = execute(cfg)
        if run is not None:  # None: a torchrun rank other than 0, whose part ended with training
            finish_run(run, cfg)
    finally:
        distributed.shutdown()


def hydra_job(cfg: DictConfig) -> None:
    """A job of Hydra's (a multirun's, on any launcher): Hydra composed ``cfg``, overrides included."""
    try:
        run_and_report(finish(cfg))
    except CardiobenchError as exc:  # the user's input: one clear line, no traceback
        print(f"cardiobench: error: {exc}", file=sys.stderr)
        sys.exit(1)


def hydra_run(argv: list[str]) -> None:
    """Hand a command line (``--multirun``, ``--cfg job``, overrides kept together) to Hydra's runner, as
    ``@hydra.main`` would from ``sys.argv``: sweeps and launchers work, and ``sys.argv`` is left alone."""
    from hydra import version
    from hydra._internal.utils import _run_hydra, get_args_parser

    register_configs()
    version.setbase("1.3")
    parser = get_args_parser()
    _run_hydra(args=parser.parse_args(argv), args_parser=parser, task_function=hydra_job,
               config_path=str(CONF_DIR), config_name="config")
