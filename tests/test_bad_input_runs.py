"""Bad input to the run-folder commands (run resume, evaluate, check, report) and to the config:
a run removes only the files it created, a damaged folder or reference is named in one line, an
out-of-range setting is refused when the config is resolved, out-of-range predictions are reported.
Run folders are made from predictions (tests/runmaker.py), never by training."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import _WORKDIR, cli
from .runmaker import echo_test_set, ef_predictions, make_run

# names a user may well give their own files: the sweep of an old version matched them all
DECOYS = (".results.20261207.csv", ".foo.tmp", ".x.partial", ".last.pt.k3x_9a2b.pt", ".notes.abcd1234",
          ".predictions.csv.abcd1234.csv", ".tokenizer.q1w2e3r4")


@pytest.fixture(scope="module")
def echo(twin, tmp_path_factory) -> tuple[Path, pd.DataFrame, np.ndarray]:
    """(data root, TEST truth, TEST EF) of a copy of the small twin with 10 TEST videos."""
    return echo_test_set(twin, tmp_path_factory.mktemp("bad_runs") / "echo", n_test=10)


@pytest.fixture(scope="module")
def finished(echo, tmp_path_factory) -> Path:
    """A finished echonet_ef run folder (read-only: tests copy it to change it)."""
    root, truth, ef = echo
    return make_run(tmp_path_factory.mktemp("finished") / "run", "echonet_ef", "echonet_dynamic_r2plus1d",
                    ef_predictions(truth, ef + 3.0), root, in_process=True)


def _copy(run: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, to))


def _plant_decoys(folder: Path) -> dict[str, bytes]:
    """The user's own files, in ``folder`` and two levels of subfolders; returns {relative path: bytes}."""
    out = {}
    for sub in (Path("."), Path("notes"), Path("notes") / "deeper"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for name in DECOYS:
            data = f"{sub}/{name}: mine\n".encode()
            (folder / sub / name).write_bytes(data)
            out[str(sub / name)] = data
    (folder / ".x.partial.d").mkdir()  # and a folder, as mkdtemp would have named one
    (folder / ".x.partial.d" / "keep.txt").write_bytes(b"mine")
    out[".x.partial.d/keep.txt"] = b"mine"
    return out


def _intact(folder: Path, decoys: dict[str, bytes]) -> list[str]:
    return [k for k, v in decoys.items() if not (folder / k).is_file() or (folder / k).read_bytes() != v]


def _killed_writer(folder: Path, target: str) -> None:
    """A real temporary: a process killed inside :func:`atomic_path` (and inside a staging folder)."""
    code = ("import os, sys; from pathlib import Path; from cardiobench.io import atomic_path, staging_dir\n"
            f"d = staging_dir(Path({str(folder / 'tokenizer')!r})); (d / 'vocab.txt').write_text('half')\n"
            f"cm = atomic_path(Path({str(folder / target)!r})); tmp = cm.__enter__(); tmp.write_text('half')\n"
            "os._exit(9)")
    subprocess.run([sys.executable, "-c", code], check=False)


# ----------------------------------------------------------------------------- 1. data loss


def test_resume_into_a_folder_of_user_files_refuses_and_removes_nothing(tmp_path):
    folder = tmp_path / "my_folder"
    decoys = _plant_decoys(folder)
    proc = cli("run", "--task", "echonet_ef", "--profile", "tiny", "--run-dir", str(folder), "resume=true",
               f"data.root={tmp_path / 'nowhere'}", "report=false")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "not a run folder" in proc.stderr and str(folder) in proc.stderr
    assert "half-written" not in proc.stderr
    assert not _intact(folder, decoys)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*DECOYS, "notes", ".x.partial.d"])  # nothing added


def test_resume_sweeps_its_own_temporaries_only(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "interrupted"}))
    decoys = _plant_decoys(run)
    (run / "checkpoints").mkdir()
    _killed_writer(run, "checkpoints/last.pt")
    ours = sorted(p.name for p in run.rglob(".cbtmp-*"))
    assert len(ours) == 2, ours  # the staging folder and the half-written checkpoint
    # data.root names no folder: the run stops right after its folder checks and sweep, before any training
    proc = cli("run", "--task", "echonet_ef", "--profile", "tiny", "--run-dir", str(run), "resume=true",
               f"data.root={tmp_path / 'nowhere'}", "report=false")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "data.root is not a folder" in proc.stderr
    assert not _intact(run, decoys), "a user's file was removed or changed"
    assert not list(run.rglob(".cbtmp-*")), "the killed writer's temporaries were not swept"
    assert proc.stderr.count("left half-written by the interrupted run") == 2


def test_sweep_needs_the_folders_marker(tmp_path):
    from cardiobench.io import sweep_temporaries

    _killed_writer(tmp_path, "results.csv")
    decoys = _plant_decoys(tmp_path)
    assert sweep_temporaries(tmp_path, marker="manifest.json") == []  # not a cardiobench folder: untouched
    assert len(list(tmp_path.glob(".cbtmp-*"))) == 2
    (tmp_path / "manifest.json").write_text("{}")
    assert len(sweep_temporaries(tmp_path, marker="manifest.json")) == 2
    assert not _intact(tmp_path, decoys)


def test_temporaries_are_named_unmistakably(tmp_path):
    from cardiobench.io import atomic_path, is_temporary, staging_dir

    with atomic_path(tmp_path / "mask.nii.gz", suffix=".nii.gz") as tmp:
        assert is_temporary(tmp) and tmp.name.startswith(f".cbtmp-{os.getpid()}-") and tmp.name.endswith(".nii.gz")
        tmp.write_text("x")
    d = staging_dir(tmp_path / "tokenizer")
    assert is_temporary(d) and d.name.endswith("-tokenizer")
    assert not any(is_temporary(name) for name in DECOYS)


# ----------------------------------------------------------------------------- 2. tracebacks


@pytest.mark.parametrize("damaged", ["manifest.json", "metrics.json"])
def test_report_skips_a_damaged_run_folder(finished, tmp_path, damaged):
    runs = tmp_path / "runs"
    _copy(finished, runs / "good")
    bad = _copy(finished, runs / "bad")
    text = (bad / damaged).read_text()
    (bad / damaged).write_text(text[: len(text) // 2])
    proc = cli("report", str(runs), "--out", str(tmp_path / "site"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"skipped run folder {bad}" in proc.stderr and damaged in proc.stderr
    records = json.loads((tmp_path / "site" / "echonet_ef.json").read_text())
    assert [Path(r["run"]).name for r in records] == ["good"]


def test_report_out_naming_a_file(finished, tmp_path):
    out = tmp_path / "page.html"
    out.write_text("mine")
    proc = cli("report", str(finished), "--out", str(out))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and str(out) in proc.stderr and "must be a folder" in proc.stderr
    assert out.read_text() == "mine"


@pytest.mark.parametrize("key", ["value", "tolerance", "metric", "direction", "predictions", "task"])
def test_check_reference_with_a_null_field(finished, tmp_path, key):
    ref = tmp_path / "echonet_ef.json"
    cli("check", str(finished), "--reference", str(ref), "--write-reference", check=True)
    stored = json.loads(ref.read_text())
    ref.write_text(json.dumps({**stored, key: None}))
    proc = cli("check", str(finished), "--reference", str(ref))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{ref}: reference key '{key}' is null" in proc.stderr


@pytest.mark.parametrize("override, key, allowed", [
    ("ci.level=1.5", "ci.level", "in (0, 1)"), ("ci.level=0", "ci.level", "in (0, 1)"),
    ("ci.n_resamples=-5", "ci.n_resamples", ">= 1"), ("train.epochs=-1", "train.epochs", ">= 0"),
    ("train.batch_size=0", "train.batch_size", ">= 1"), ("data.workers=-3", "data.workers", ">= 0"),
    ("seed=-1", "seed", "in [0, 4294967295]"), ("train.lr=0", "train.lr", "> 0"),
    ("train.warmup_fraction=1.5", "train.warmup_fraction", "in [0, 1)"), ("data.twin.n=0", "data.twin.n", ">= 1"),
])
def test_numeric_setting_out_of_range(override, key, allowed):
    from cardiobench.config import compose
    from cardiobench.errors import CardiobenchError

    with pytest.raises(CardiobenchError) as e:
        compose("echonet_ef", profile="tiny", overrides=[override])
    assert str(e.value).startswith(f"{key}=") and f"{key} must be {allowed}" in str(e.value)


def test_numeric_setting_out_of_range_is_one_line_before_any_work():
    proc = cli("run", "--task", "echonet_ef", "--profile", "tiny", "train.epochs=-1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "cardiobench: error: train.epochs=-1 is out of range: train.epochs must be >= 0"


def _popen(*args: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen([sys.executable, "-m", "cardiobench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=_WORKDIR[0])


def test_two_evaluations_of_one_run_at_once(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    procs = [_popen("evaluate", str(run)) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert json.loads((run / "metrics.json").read_text())["mae"]["value"] == pytest.approx(3.0)
    assert not list(run.glob(".cbtmp-*"))


def test_two_external_evaluations_of_one_model_at_once(echo, tmp_path):
    root, truth, ef = echo
    file = tmp_path / "mine.csv"
    pd.DataFrame({"sample_id": truth.FileName, "EF_pred": ef + 1}).to_csv(file, index=False)
    args = ("evaluate", "--task", "echonet_ef", "--predictions", str(file), "--name", "same", f"data.root={root}",
            f"runs_root={tmp_path / 'runs'}", "report=false", "progress=false")
    procs = [_popen(*args) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    folders = sorted((tmp_path / "runs" / "echonet_ef" / "external").iterdir())
    assert len(folders) == 2 and all(json.loads((f / "manifest.json").read_text())["status"] == "finished"
                                      for f in folders)


# ----------------------------------------------------------------------------- 3. silent or misleading


def _with_predictions(finished: Path, to: Path, edit) -> Path:
    run = _copy(finished, to)
    df = pd.read_csv(run / "predictions.csv", dtype={"sample_id": str, "patient_id": str})
    edit(df)
    df.to_csv(run / "predictions.csv", index=False)
    return run


def test_out_of_range_predictions_are_reported(finished, tmp_path):
    def edit(df):
        df.loc[1, "EF_pred"], df.loc[4, "EF_pred"] = 250.0, -20.0

    run = _with_predictions(finished, tmp_path / "run", edit)
    proc = cli("evaluate", str(run))
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "outside the range" in line]
    assert len(warning) == 1 and str(run / "predictions.csv") in warning[0]
    assert "column EF_pred has 2 of 10 row(s)" in warning[0] and "[0, 100]" in warning[0]
    assert "line(s) 3 (" in warning[0] and ", 6 (" in warning[0]


def test_nan_prediction_is_refused_naming_file_line_and_column(finished, tmp_path):
    def edit(df):
        df.loc[2, "EF_pred"] = np.nan

    run = _with_predictions(finished, tmp_path / "run", edit)
    before = (run / "metrics.json").read_bytes()
    proc = cli("evaluate", str(run))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    sid = pd.read_csv(run / "predictions.csv", dtype=str).sample_id[2]
    assert f"{run / 'predictions.csv'}: column EF_pred has a missing, NaN or non-numeric value on line(s) 4 ({sid})" \
        in proc.stderr
    assert (run / "metrics.json").read_bytes() == before


def test_probability_outside_0_1_is_reported():
    from cardiobench.config import load_task
    from cardiobench.evaluation import check_values

    spec = load_task("ct_cardiac")
    df = pd.DataFrame({"sample_id": ["a", "b", "c"], "lvef_pred": [55.0, 60.0, 40.0], "as_prob": [0.2, 1.3, -0.1]})
    [warning] = check_values(df, spec, "p.csv")
    assert warning.startswith("p.csv: column as_prob has 2 of 3 row(s) outside the range of target "
                              "'aortic_stenosis', [0, 1]")


def test_spec_range_is_validated(tmp_path):
    from cardiobench.config import _task_node
    from cardiobench.errors import CardiobenchError
    from cardiobench.spec import from_config

    path, node = _task_node("echonet_ef")
    node.targets.EF.range = [100, 0]
    with pytest.raises(CardiobenchError, match=r"targets.EF.range: low 100.0 must be below high 0.0"):
        from_config(node, path)


@pytest.mark.parametrize("value", ["/tmp/my data(1)/x", "/tmp/a=b", "/tmp/a,b", "/tmp/[x]"])
def test_path_the_override_grammar_cannot_take(value):
    proc = cli("run", "--task", "echonet_ef", "--profile", "tiny", f"data.root={value}")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"""quote the value for Hydra's override grammar (and the whole argument for the shell): \
'data.root="{value}"'""" in proc.stderr


def test_quoted_form_in_the_hint_works(tmp_path):
    from cardiobench.config import compose, quote_hint

    folder = tmp_path / "my data (1), a=b [x]"
    folder.mkdir()
    hint = quote_hint(f"data.root={folder}")
    import shlex

    [arg] = shlex.split(hint.rpartition(": ")[2])
    assert compose("echonet_ef", profile="tiny", overrides=[arg]).data.root == str(folder)


def test_run_dir_with_grammar_characters(tmp_path):
    folder = tmp_path / "run (1), a=b"
    proc = cli("run", "--task", "echonet_ef", "--profile", "tiny", "--run-dir", str(folder), "--cfg", "job")
    assert proc.returncode == 0, proc.stderr
    assert f"run_dir: {folder}" in proc.stdout


def test_refused_evaluate_leaves_the_manifest_as_it_was(finished, tmp_path):
    run = _with_predictions(finished, tmp_path / "run", lambda df: df.pop("EF"))
    before = (run / "manifest.json").read_bytes()
    proc = cli("evaluate", str(run))
    assert proc.returncode == 1 and f"{run / 'predictions.csv'}: lacks column(s) EF" in proc.stderr
    assert (run / "manifest.json").read_bytes() == before


def test_external_evaluation_refused_by_its_config_makes_no_run_folder(echo, tmp_path):
    root, truth, ef = echo
    file = tmp_path / "mine.csv"
    pd.DataFrame({"sample_id": truth.FileName, "EF_pred": ef}).to_csv(file, index=False)
    proc = cli("evaluate", "--task", "echonet_ef", "--predictions", str(file), "--name", "m", f"data.root={root}",
               f"runs_root={tmp_path / 'runs'}", "report=false", "ci.level=1.5")
    assert proc.returncode == 1 and "ci.level=1.5 is out of range" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_external_evaluation_failing_while_scored_is_marked_failed(echo, tmp_path, monkeypatch):
    from cardiobench import external
    from cardiobench.errors import DataError

    root, truth, ef = echo
    file = tmp_path / "mine.csv"
    pd.DataFrame({"sample_id": truth.FileName, "EF_pred": ef}).to_csv(file, index=False)

    def refuse(*args, **kwargs):
        raise DataError("predictions: metric 'mae' cannot be computed (a test's reason)")

    monkeypatch.setattr(external, "evaluate", refuse)
    with pytest.raises(DataError):
        external.evaluate_external("echonet_ef", file, "m", [f"data.root={root}", f"runs_root={tmp_path / 'runs'}"])
    [folder] = (tmp_path / "runs" / "echonet_ef" / "external").iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "a test's reason" in manifest["error"]
