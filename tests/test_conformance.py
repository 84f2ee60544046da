"""Protocol conformance of every registered task, on its tiny profile (the plumbing, not learning):

run -> resume after a kill (identical predictions) -> evaluate from the run folder alone -> compare
two runs -> external predictions (where the spec has a schema) -> check -> report.

The list of tasks is read when the tests are collected, so a new task (built in, or out of tree on
``CARDIOBENCH_INCLUDE``, as the toy task under tests/plugins is) joins this test by existing.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cardiobench.config import load_task, task_names

from .conftest import cli

TASKS = task_names()
COMMON = ["--profile", "tiny", "progress=false", "report=false"]


def _run(task: str, run_dir: Path, runs_root: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    return cli("run", "--task", task, "--run-dir", str(run_dir), *COMMON, f"runs_root={runs_root}", *extra,
               cache=cache, check=True)


_BUILT: dict[str, dict] = {}


def _protocol(task: str, cache_dir: Path, tmp_path_factory, workdir: Path) -> dict:
    """Per task, once: run A, and run B killed mid-training then resumed."""
    if task in _BUILT:
        return _BUILT[task]
    tmp = tmp_path_factory.mktemp(f"conformance_{task}")
    runs = tmp / "runs"
    a = runs / task / "A"
    _run(task, a, runs, cache_dir)
    b = runs / task / "B"
    env = dict(os.environ, CARDIOBENCH_CACHE=str(cache_dir))
    proc = subprocess.Popen([sys.executable, "-m", "cardiobench", "run", "--task", task, "--run-dir", str(b),
                             *COMMON, f"runs_root={runs}"], cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = b / "checkpoints" / "last.pt"
    deadline = time.time() + 600
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = dict(alive=alive, returncode=proc.returncode, epoch=torch.load(last, weights_only=False)["epoch"],
                  status=json.loads((b / "manifest.json").read_text())["status"],
                  predicted=(b / "predictions.csv").exists())
    resumed = _run(task, b, runs, cache_dir, "resume=true")
    _BUILT[task] = dict(task=task, spec=load_task(task), a=a, b=b, runs=runs, tmp=tmp, killed=killed,
                        resumed=resumed, cache=cache_dir)
    return _BUILT[task]


# The two slowest tasks' contracts (a run, kill and resume, external predictions: about 60 s each on 2 cores)
# run behind -m slow, in .ci/run; the others keep the contract in the default run.
HEAVY = ("acdc_seg", "ct_cardiac")


@pytest.fixture(scope="module", params=[pytest.param(t, marks=pytest.mark.slow) if t in HEAVY else t for t in TASKS])
def protocol(request, cache_dir, tmp_path_factory, workdir):
    return _protocol(request.param, cache_dir, tmp_path_factory, workdir)


def _external(protocol: dict) -> Path:
    """The run folder of external predictions made from run A's (scored once): a CSV of its primary
    predictions, or a copy of its predicted masks for a task whose external kind is ``masks``."""
    if "external" not in protocol:
        spec, a = protocol["spec"], protocol["a"]
        if spec.external.kind == "masks":
            import shutil

            file = protocol["tmp"] / "external masks"  # a space in the path, as users have
            shutil.copytree(a / "masks", file)
        else:
            key = spec.external.key or spec.row_keys[0]  # the column an external file names its rows by
            pred = pd.read_csv(a / "predictions.csv", dtype={key: str})
            if spec.variant:
                pred = pred[pred[spec.variant] == pred[spec.variant].iloc[0]]
            file = protocol["tmp"] / "external.csv"
            # the file's own column names (CT-CLIP's "VolumeName", "Cardiomegaly", ...) where the spec renames
            theirs = {ours: col for col, ours in spec.external.rename.items()}
            pred.rename(columns=theirs)[[theirs.get(key, key), *spec.external.columns]].to_csv(file, index=False)
        root = json.loads((a / "manifest.json").read_text())["data"]["root"]
        proc = cli("evaluate", "--task", spec.name, "--predictions", str(file), "--name", "elsewhere",
                   f"data.root={root}", f"runs_root={protocol['runs']}", "report=false", cache=protocol["cache"],
                   check=True)
        protocol["external"] = Path(re.search(r"run folder: (.+)", proc.stdout).group(1).strip())
    return protocol["external"]


def test_run_folder_contract(protocol):
    spec, a = protocol["spec"], protocol["a"]
    for name in ("config.yaml", "manifest.json", "predictions.csv", "metrics.json", "log.txt",
                 "checkpoints/last.pt", "checkpoints/best.pt", *spec.artifacts):
        assert (a / name).is_file() or (a / name).is_dir() and any((a / name).iterdir()), name
    m = json.loads((a / "manifest.json").read_text())
    assert m["status"] == "finished" and m["task"] == spec.name and m["data"]["is_twin"] is True
    assert m["data"]["fingerprint"] and m["versions"]["torch"] and m["cpu_kernels"]
    pred = pd.read_csv(a / "predictions.csv")
    keys = [*spec.row_keys, spec.cluster, "split"]
    assert list(pred.columns[:len(keys)]) == keys
    assert set(spec.targets) | set(spec.prediction_columns()) <= set(pred.columns)
    assert (pred.split == spec.split).all()
    metrics = json.loads((a / "metrics.json").read_text())
    main = metrics[spec.main_score]
    assert main["value"] is not None and main["low"] <= main["value"] <= main["high"]


def test_resume_after_kill_is_identical(protocol):
    k = protocol["killed"]
    assert k["alive"] and k["returncode"] == -signal.SIGKILL, "the run must be killed while it is still running"
    assert 1 <= k["epoch"] < 2 and k["status"] == "running" and not k["predicted"]
    assert f"at epoch {k['epoch']}" in protocol["resumed"].stderr
    a, b = protocol["a"], protocol["b"]
    assert (a / "predictions.csv").read_bytes() == (b / "predictions.csv").read_bytes()
    assert json.loads((a / "metrics.json").read_text()) == json.loads((b / "metrics.json").read_text())


def test_evaluate_from_the_run_folder_alone(protocol, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(protocol["a"], copy, ignore=shutil.ignore_patterns("checkpoints", "metrics.json"))
    cli("evaluate", str(copy), check=True)
    assert json.loads((copy / "metrics.json").read_text()) == json.loads((protocol["a"] / "metrics.json").read_text())


def test_compare_two_runs(protocol, tmp_path):
    out = tmp_path / "cmp.json"
    proc = cli("compare", str(protocol["a"]), str(protocol["b"]), "--json", str(out), "--n-resamples", "999",
               check=True)
    rows = {r["metric"]: r for r in json.loads(out.read_text())["comparisons"]}
    # a table metric adds sub-tests named metric[part] (ACDC: robustness[noise], robustness[noise drop])
    assert {m.split("[")[0] for m in rows} <= set(protocol["spec"].compared)
    assert protocol["spec"].main_score in rows
    for r in rows.values():  # identical predictions: no difference, nothing significant
        assert r["diff"] == 0 and r["p_value"] == 1.0, r
    assert protocol["spec"].main_score in proc.stdout


def test_external_predictions(protocol):
    spec, a = protocol["spec"], protocol["a"]
    if spec.external is None:
        proc = cli("evaluate", "--task", spec.name, "--predictions", str(a / "predictions.csv"), "--name", "x")
        assert proc.returncode == 1 and "does not score external predictions" in proc.stderr
        return
    ext = _external(protocol)
    mine = json.loads((a / "metrics.json").read_text())[spec.main_score]["value"]
    assert json.loads((ext / "metrics.json").read_text())[spec.main_score]["value"] == pytest.approx(mine, abs=1e-5)


def test_check_gate(protocol):
    ref = protocol["tmp"] / "reference" / f"{protocol['task']}.json"
    cli("check", str(protocol["a"]), "--reference", str(ref), "--write-reference", check=True)
    stored = json.loads(ref.read_text())
    assert stored["tolerance"] == protocol["spec"].tolerance  # the spec's tolerance by default
    proc = cli("check", str(protocol["b"]), "--reference", str(ref))
    assert proc.returncode == 0 and proc.stdout.startswith("OK"), proc.stdout + proc.stderr


def test_report_page(protocol):
    spec = protocol["spec"]
    if spec.external is not None:
        _external(protocol)
    site = protocol["tmp"] / "site"
    cli("report", str(protocol["runs"]), "--out", str(site), "--task", spec.name, check=True)
    page = (site / f"{spec.name}.html").read_text()
    records = {r["run"]: r for r in json.loads((site / f"{spec.name}.json").read_text())}
    finished = 2 + (spec.external is not None)
    assert len(records) == finished and f'href="{spec.name}.html"' in (site / "index.html").read_text()
    # Run B (and the external run) against the reference run A on the same samples: one p-value per
    # compared metric, and the tie group decided.
    b = records[str(protocol["b"])]
    metrics = json.loads((protocol["a"] / "metrics.json").read_text())
    computable = [m for m in spec.compared if (metrics.get(m) or {}).get("value") is not None]
    assert spec.main_score in computable  # (an AUC needs 2 cases and 2 controls: not on every tiny twin)
    for metric in computable:
        assert f"{metric}_p_vs_reference" in b, (metric, b)
    assert b["tied_with_best"] is True  # identical predictions
    # figures drawn from training artifacts (loss curves, overlays) exist for trained runs only
    from_predictions = [f for f in spec.figures if f.kind not in ("loss_curves", "organ_overlays")]
    assert page.count("<figure>") >= 2 * len(spec.figures) + (spec.external is not None) * len(from_predictions)


def _files(folder: Path) -> set[str]:
    return {str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file()}


def _torchrun(protocol: dict, run_dir: Path, workdir: Path) -> None:
    env = dict(os.environ, CARDIOBENCH_CACHE=str(protocol["cache"]))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "cardiobench", "run", "--task", protocol["task"], "--run-dir", str(run_dir), *COMMON,
                           f"runs_root={protocol['runs']}", "profile.threads=1"],
                          env=env, cwd=workdir, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow  # about a tiny run's time per task again, twice over (torchrun, then one process)
def test_torchrun_two_ranks(protocol, workdir):
    """DDP for every task (issue 16): 2 gloo ranks train and share out the TEST forward passes; the run
    folder holds what a single run's holds (rank 1 wrote nothing into it), every scored row once, and
    the predictions equal one process's predictions from the same weights."""
    import shutil

    spec, a, runs = protocol["spec"], protocol["a"], protocol["runs"]
    ddp = runs / protocol["task"] / "ddp"
    _torchrun(protocol, ddp, workdir)
    manifest = json.loads((ddp / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["world_size"] == 2 and manifest["backend"] == "gloo"
    assert _files(ddp) == _files(a)
    row = [*spec.row_keys, *([spec.variant] if spec.variant else [])]  # what names a row
    keys = [*row, spec.cluster, "split"]
    got, single = pd.read_csv(ddp / "predictions.csv"), pd.read_csv(a / "predictions.csv")
    assert not got.duplicated(row).any()
    assert got[keys].equals(single[keys])  # the same rows in the same order as one process writes them
    # one process predicting from the DDP run's weights (as a run killed after training resumes)
    again = protocol["tmp"] / "ddp_predicted_alone"
    shutil.copytree(ddp, again, ignore=shutil.ignore_patterns("predictions.csv", "metrics.json"))
    m = json.loads((again / "manifest.json").read_text())
    (again / "manifest.json").write_text(json.dumps({**m, "status": "interrupted"}))
    cli("run", "--task", protocol["task"], "--run-dir", str(again), *COMMON, f"runs_root={runs}", "resume=true",
        cache=protocol["cache"], check=True)
    alone = pd.read_csv(again / "predictions.csv")
    assert list(alone.columns) == list(got.columns)
    numeric = got.select_dtypes("number").columns
    pd.testing.assert_frame_equal(got.drop(columns=numeric), alone.drop(columns=numeric))
    np.testing.assert_allclose(got[numeric].to_numpy(float), alone[numeric].to_numpy(float), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def toy(cache_dir, tmp_path_factory, workdir):
    return _protocol("echo_lowef", cache_dir, tmp_path_factory, workdir)


def test_out_of_tree_toy_task(toy):
    """The toy task lives in three files under tests/plugins/echo_lowef and nowhere else, yet it is
    listed, runs, scores an external CSV and gets a page with a ROC figure and DeLong p-values."""
    from .conftest import PLUGINS

    files = sorted(str(p.relative_to(PLUGINS)) for p in PLUGINS.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    assert files == ["baselines/echo_lowef_tiny.yaml", "echo_lowef.py", "task/echo_lowef.yaml"]
    listing = cli("list", check=True).stdout
    assert "task echo_lowef (v1)" in listing and "baseline echo_lowef_tiny  (reference)" in listing
    _external(toy)
    site = toy["tmp"] / "toy_site"
    cli("report", str(toy["runs"]), "--out", str(site), "--task", "echo_lowef", check=True)
    page = (site / "echo_lowef.html").read_text()
    assert "<figcaption>ROC</figcaption>" in page and "paired DeLong" in page
    records = json.loads((site / "echo_lowef.json").read_text())
    # Every row has a p-value: B and the external run against run A, and A against B (both are runs
    # of the reference baseline on the same samples).
    assert len(records) == 3 and all("auc_p_vs_reference" in r for r in records)
