"""Seed sweeps on Hydra's launchers (issue 16): joblib's parallel local processes and submitit's local
executor (the job objects SLURM would run) each run a 2-seed tiny sweep; every job writes its own run
folder, the page is rendered once after the last job and shows one row for the two seeds. The SLURM
launcher's config composes without a cluster."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import cli

# behind -m slow to keep the default run inside its budget (the launchers' sweeps, about 50 s); .ci/run runs it
pytestmark = pytest.mark.slow

TINY = ["--task", "echonet_ef", "--profile", "tiny", "progress=false", "profile.threads=1"]


def _sweep(launcher: list[str], tmp: Path, cache: Path):
    proc = cli("run", *TINY, "--multirun", "seed=0,1", *launcher, f"runs_root={tmp / 'runs'}",
               f"site_dir={tmp / 'site'}", cache=cache, check=True)
    runs = sorted((tmp / "runs" / "echonet_ef" / "echonet_dynamic_r2plus1d").glob("tiny-s*"))
    return proc, runs


def _one_row_two_seeds(tmp: Path, runs: list[Path]) -> dict:
    records = json.loads((tmp / "site" / "echonet_ef.json").read_text())
    assert len(records) == 1, records
    rec = records[0]
    maes = [json.loads((r / "metrics.json").read_text())["mae"]["value"] for r in runs]
    assert rec["n_seeds"] == 2 and rec["seed"] == "0, 1"
    assert rec["mae"] == pytest.approx(np.mean(maes)) and rec["mae_sd_over_seeds"] == pytest.approx(np.std(maes, ddof=1))
    return rec


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory, cache_dir):
    tmp = tmp_path_factory.mktemp("joblib")
    proc, runs = _sweep(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], tmp, cache_dir)
    return tmp, proc, runs


def test_joblib_sweep_two_run_folders_one_row(joblib_sweep):
    tmp, proc, runs = joblib_sweep
    assert [r.name.split("-")[1] for r in runs] == ["s0", "s1"]
    for r in runs:
        assert json.loads((r / "manifest.json").read_text())["status"] == "finished"
    # the jobs leave the page to the end of the sweep: two notes, then the page once
    assert proc.stdout.count("rendered once, when the whole sweep has ended") == 2
    assert proc.stdout.count("leaderboard page: /") == 1
    assert proc.stdout.rstrip().endswith("echonet_ef.html")
    _one_row_two_seeds(tmp, runs)
    page = (tmp / "site" / "echonet_ef.html").read_text()
    assert "2 seeds" in page and "±" in page


def test_seeds_differ_and_a_used_run_folder_is_refused(joblib_sweep, cache_dir):
    _, _, runs = joblib_sweep
    a, b = (pd.read_csv(r / "predictions.csv") for r in runs)
    assert not np.allclose(a.EF_pred, b.EF_pred)
    proc = cli("run", *TINY, "--run-dir", str(runs[0]), "report=false", cache=cache_dir)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "resume=true" in proc.stderr


def test_submitit_local_sweep(tmp_path, cache_dir):
    proc, runs = _sweep(["hydra/launcher=submitit_local"], tmp_path, cache_dir)
    assert len(runs) == 2
    _one_row_two_seeds(tmp_path, runs)
    assert list((tmp_path / "runs" / "_multirun").glob("*/.submitit"))  # submitit's job folders


def test_slurm_launcher_composes_without_a_cluster(tmp_path):
    proc = cli("run", *TINY, "--multirun", "seed=0,1,2", "hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu",
               "hydra.launcher.gpus_per_node=4", "hydra.launcher.timeout_min=720", "--cfg", "hydra",
               f"runs_root={tmp_path / 'runs'}", check=True)
    launcher = proc.stdout[proc.stdout.index("\n  launcher:"):]
    assert "_target_: hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in launcher
    assert "partition: gpu" in launcher and "gpus_per_node: 4" in launcher and "timeout_min: 720" in launcher
    assert not (tmp_path / "runs").exists()  # printed, not run
    job = cli("run", *TINY, "--multirun", "seed=0,1,2", "--cfg", "job", check=True).stdout
    assert "seed: 0" in job  # the first job of the sweep
