"""`cardiobench run`: run-folder contract, determinism, resume after a kill, evaluate, errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from .conftest import ROOT, TINY, cli


@pytest.fixture(scope="module")
def seed0(cache_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("runs") / "seed0"
    cli("run", "--task", "echonet_ef", "--run-dir", str(d), *TINY, cache=cache_dir, check=True)
    return d


def test_run_folder_contract(seed0):
    for name in ("config.yaml", "manifest.json", "predictions.csv", "metrics.json", "log.txt",
                 "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (seed0 / name).is_file(), name
    m = json.loads((seed0 / "manifest.json").read_text())
    assert m["status"] == "finished" and m["seed"] == 0 and m["data"]["is_twin"] is True
    assert m["data"]["fingerprint"] and m["versions"]["torch"] and m["git_commit"]
    pred = pd.read_csv(seed0 / "predictions.csv")
    assert list(pred.columns[:5]) == ["sample_id", "patient_id", "split", "EF", "EF_pred"]
    assert (pred.split == "TEST").all() and list(pred["mode"].unique()) == ["single_clip", "all_clips"]
    assert all(g.sample_id.is_unique for _, g in pred.groupby("mode"))
    assert (pred.clips_stride[pred["mode"] == "all_clips"] == 8).all()
    metrics = json.loads((seed0 / "metrics.json").read_text())
    for k in ("mae", "rmse", "r2"):
        v = metrics[k]
        assert v["low"] <= v["value"] <= v["high"] and v["level"] == 0.95 and v["n"] == len(pred) // 2
    assert metrics["primary_mode"] == "single_clip" and set(metrics["by_mode"]) == {"single_clip", "all_clips"}


def test_same_seed_same_bytes_other_seed_differs(seed0, cache_dir, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    cli("run", "--task", "echonet_ef", "--run-dir", str(again), *TINY, cache=cache_dir, check=True)
    cli("run", "--task", "echonet_ef", "--run-dir", str(other), "seed=1", *TINY, cache=cache_dir, check=True)
    assert (again / "predictions.csv").read_bytes() == (seed0 / "predictions.csv").read_bytes()
    assert (other / "predictions.csv").read_bytes() != (seed0 / "predictions.csv").read_bytes()


def test_resume_after_kill_matches_uninterrupted(cache_dir, workdir, tmp_path):
    args = [*TINY, "train.epochs=4"]
    full = tmp_path / "full"
    cli("run", "--task", "echonet_ef", "--run-dir", str(full), *args, cache=cache_dir, check=True)

    killed = tmp_path / "killed"
    env = dict(os.environ, CARDIOBENCH_CACHE=str(cache_dir))
    proc = subprocess.Popen([sys.executable, "-m", "cardiobench", "run", "--task", "echonet_ef", "--run-dir",
                             str(killed), *args], cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 600
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert alive and proc.returncode == -signal.SIGKILL, "the run must be killed while it is still running"
    assert (killed / "config.yaml").is_file()  # written before training started
    epoch = torch.load(last, weights_only=False)["epoch"]
    assert 1 <= epoch < 4, f"killed after epoch {epoch} of 4: not mid-training"
    assert json.loads((killed / "manifest.json").read_text())["status"] == "running"
    assert not (killed / "predictions.csv").exists() and not (killed / "metrics.json").exists()

    resumed = cli("run", "--task", "echonet_ef", "--run-dir", str(killed), "resume=true", *args, cache=cache_dir,
                  check=True)
    assert f"resumed from {last} at epoch {epoch}" in resumed.stderr
    assert (killed / "predictions.csv").read_bytes() == (full / "predictions.csv").read_bytes()
    a = json.loads((killed / "metrics.json").read_text())
    b = json.loads((full / "metrics.json").read_text())
    assert a["mae"] == b["mae"] and a["r2"] == b["r2"]


def test_evaluate_recomputes_from_predictions(seed0):
    before = json.loads((seed0 / "metrics.json").read_text())
    (seed0 / "metrics.json").unlink()
    proc = cli("evaluate", str(seed0), check=True)
    assert "mae" in proc.stdout
    assert json.loads((seed0 / "metrics.json").read_text())["mae"] == before["mae"]


def test_existing_run_dir_is_not_overwritten(seed0, cache_dir):
    proc = cli("run", "--task", "echonet_ef", "--run-dir", str(seed0), *TINY, cache=cache_dir)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "resume=true" in proc.stderr


@pytest.mark.parametrize("args,match", [
    (["run", "--task", "nope"], "unknown task 'nope'"),
    (["run", "--task", "echonet_ef", "--baseline", "nope"], "unknown baseline 'nope'"),
    (["run", "--task", "echonet_ef", "data.root=/does/not/exist", "progress=false"], "data.root is not a folder"),
    (["evaluate", "/does/not/exist"], "not a run folder"),
])
def test_clear_errors(args, match, cache_dir, tmp_path):
    if args[0] == "run":
        args = [*args, "--run-dir", str(tmp_path / "r")]
    proc = cli(*args, cache=cache_dir)
    assert proc.returncode != 0
    assert match in proc.stderr and "Traceback" not in proc.stderr


def test_help_is_useful():
    for args in (["--help"], ["run", "--help"], ["data", "synth", "--help"], ["data", "verify", "--help"],
                 ["evaluate", "--help"], ["list"]):
        proc = cli(*args, check=True)
        assert len(proc.stdout) > 200
    assert "resume=true" in cli("run", "--help").stdout
