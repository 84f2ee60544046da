"""Scoring a run made elsewhere needs numpy/pandas/scipy/matplotlib only: the generic steps import
no torch, and they work in a Python where importing torch fails."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from .runmaker import ef_predictions, make_run, split_twin, truth_of

GENERIC = ["cardiobench.report", "cardiobench.compare", "cardiobench.check", "cardiobench.external",
           "cardiobench.evaluation", "cardiobench.config", "cardiobench.cli", "cardiobench.evaluation.surface",
           "cardiobench.tasks.acdc.scoring", "cardiobench.tasks.acdc.format"]

# As if torch were not installed: importing it (or torchvision) raises ImportError.
NO_TORCH = """import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, _NoTorch())
"""


def test_generic_modules_load_no_torch():
    code = f"import {', '.join(GENERIC)}, sys; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_evaluate_compare_check_report_without_torch(twin80, tmp_path):
    root = split_twin(twin80, tmp_path / "echo", n_test=30)
    truth = truth_of(root)
    y = truth.EF.to_numpy(float)
    rng = np.random.default_rng(0)
    a = make_run(tmp_path / "runs" / "a", "echonet_ef", "echonet_dynamic_r2plus1d",
                 ef_predictions(truth, y + rng.normal(0, 4, len(y))), root)
    b = make_run(tmp_path / "runs" / "b", "echonet_ef", "echonet_dynamic_r3d",
                 ef_predictions(truth, y + rng.normal(0, 6, len(y))), root)
    (a / "metrics.json").unlink()
    ext = tmp_path / "ext.csv"
    truth.assign(EF_pred=y + 1)[["FileName", "EF_pred"]].rename(columns={"FileName": "sample_id"}).to_csv(ext,
                                                                                                         index=False)
    for args in (["evaluate", str(a)], ["compare", str(a), str(b), "--n-resamples", "500"],
                 ["check", str(a), "--reference", str(tmp_path / "ref.json"), "--write-reference"],
                 ["check", str(b), "--reference", str(tmp_path / "ref.json")],
                 ["evaluate", "--task", "echonet_ef", "--predictions", str(ext), "--name", "ext",
                  f"data.root={root}", f"runs_root={tmp_path / 'runs'}", f"site_dir={tmp_path / 'site1'}"],
                 ["report", str(tmp_path / "runs"), "--out", str(tmp_path / "site")]):
        code = NO_TORCH + f"from cardiobench.cli import main; sys.exit(main({args!r}))"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, (args, proc.stderr)
        if args[0] != "check" or "--write-reference" in args:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    assert json.loads((a / "metrics.json").read_text())["mae"]["value"] > 0
    records = json.loads((tmp_path / "site" / "echonet_ef.json").read_text())
    assert len(records) == 3 and (tmp_path / "site1" / "echonet_ef.html").is_file()
