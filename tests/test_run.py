"""`cardiobench run`: clear errors for bad input and misspelled keys, help (seeds differing: test_sweep.py).

The run-folder contract, resume after a kill, evaluate/compare/check/report are tested for every
task in test_conformance.py."""
from __future__ import annotations

import pytest

from .conftest import cli

TINY = ["--profile", "tiny", "progress=false", "report=false"]


@pytest.mark.parametrize("args,match", [
    (["run", "--task", "nope"], "unknown task 'nope'"),
    (["run", "--task", "echonet_ef", "--baseline", "nope"], "unknown baseline 'nope'"),
    (["run", "--task", "echonet_ef", "--baseline", "echonet_dynamic_deeplabv3"], "is for task 'echonet_seg'"),
    (["run", "--task", "echonet_ef", "data.root=/does/not/exist", "progress=false"], "data.root is not a folder"),
    (["run", "--task", "echonet_ef", "train.epoch=3"],
     "unknown config key 'train.epoch'; did you mean 'train.epochs'?"),
    (["run", "--task", "echonet_ef", "eval.max_beat=3"], "did you mean 'eval.max_beats'?"),
    (["run", "--task", "echonet_ef", "train.epochs=three"], "could not be converted to Integer"),
    (["evaluate", "/does/not/exist"], "not a run folder"),
    (["evaluate", "--task", "echonet_ef", "--predictions", "x.csv", "--name", "x", "data.rooot=/x"],
     "unknown config key 'data.rooot'; did you mean 'data.root'?"),
])
def test_clear_errors(args, match, cache_dir, tmp_path):
    if args[0] == "run":
        args = [*args, "--run-dir", str(tmp_path / "r")]
    proc = cli(*args, cache=cache_dir)
    assert proc.returncode == 1, proc.stderr
    assert match in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("cardiobench: error:")
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_misspelled_override_is_one_line():
    proc = cli("run", "--task", "echonet_ef", "train.epoch=3")
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "cardiobench: error: unknown config key 'train.epoch'; did you mean 'train.epochs'? "
        "(+train.epoch=... adds a new key on purpose)"]


def test_help_is_useful():
    for args in (["--help"], ["run", "--help"], ["data", "synth", "--help"], ["data", "verify", "--help"],
                 ["evaluate", "--help"], ["list"]):
        proc = cli(*args, check=True)
        assert len(proc.stdout) > 200
    assert "resume=true" in cli("run", "--help").stdout
