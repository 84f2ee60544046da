"""Run folders made from predictions alone (no training), for tests of everything after prediction.

Such a folder follows the run-folder contract (config.yaml, manifest.json, predictions.csv) and
gets its metrics.json from ``cardiobench evaluate RUN``, exactly as a run made on a GPU cluster.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from .conftest import cli


def split_twin(src: Path, out: Path, n_test: int | None = None, test: list[str] | None = None,
               patients_of: dict[str, str] | None = None) -> Path:
    """A copy of an EchoNet-Dynamic twin whose TEST split is its first ``n_test`` videos (or the
    videos named in ``test``), the rest TRAIN/VAL, with an optional PatientID column (real EchoNet
    has one video per patient; other datasets do not)."""
    shutil.copytree(src, out)
    fl = pd.read_csv(out / "FileList.csv")
    is_test = fl.FileName.isin(test).to_numpy() if test is not None else np.arange(len(fl)) < n_test
    rest = np.flatnonzero(~is_test)
    fl["Split"] = "TEST"
    fl.loc[rest[: len(rest) - len(rest) // 2], "Split"] = "TRAIN"
    fl.loc[rest[len(rest) - len(rest) // 2:], "Split"] = "VAL"
    if patients_of is not None:
        fl["PatientID"] = [patients_of.get(n, n) for n in fl.FileName]
    fl.to_csv(out / "FileList.csv", index=False)
    return out


def truth_of(root: Path) -> pd.DataFrame:
    fl = pd.read_csv(root / "FileList.csv")
    t = fl[fl.Split.str.upper() == "TEST"].reset_index(drop=True)
    t["patient_id"] = t["PatientID"].astype(str) if "PatientID" in t.columns else t.FileName
    return t


def echo_test_set(twin: Path, out: Path, n_test: int = 60) -> tuple[Path, pd.DataFrame, np.ndarray]:
    """(root, TEST truth, its EF) of a copy of ``twin`` whose first ``n_test`` videos are TEST."""
    root = split_twin(twin, out, n_test=n_test)
    truth = truth_of(root)
    return root, truth, truth.EF.to_numpy(float)


def make_run(path: Path, task: str, baseline: str, predictions: pd.DataFrame, data_root: Path,
             profile: str = "smoke", seed: int = 0, in_process: bool = False, is_twin: bool = True) -> Path:
    """A finished run folder of ``baseline`` holding ``predictions``; metrics from `cardiobench evaluate`
    (``in_process``: the same ``evaluate`` called here, 3 s faster per run, for tests not about the CLI)."""
    from cardiobench.config import compose
    from cardiobench.data.fingerprint import fingerprint

    cfg = compose(task, baseline, profile, [f"data.root={data_root}", f"seed={seed}"])
    path.mkdir(parents=True)
    cfg.run_dir = str(path)
    (path / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    manifest = dict(task=task, task_version=int(cfg.task.version), baseline=baseline, profile=profile,
                    model=str(cfg.model.name), seed=seed, status="finished", started="2026-11-23T00:00:00+00:00",
                    ended="2026-11-23T00:01:00+00:00", git_commit="test",
                    data={"root": str(data_root), "is_twin": is_twin, "format": str(cfg.task.format),
                          "fingerprint": fingerprint(data_root)})
    (path / "manifest.json").write_text(json.dumps(manifest))
    predictions.to_csv(path / "predictions.csv", index=False, float_format="%.6f")
    if in_process:
        from cardiobench.config import spec_of
        from cardiobench.evaluation import evaluate
        from cardiobench.runs import Run

        run = Run(path)
        run.write_metrics(evaluate(run.predictions(), spec_of(cfg), cfg.ci))
    else:
        cli("evaluate", str(path), check=True)
    return path


def ef_predictions(truth: pd.DataFrame, pred: np.ndarray, mode: str = "single_clip") -> pd.DataFrame:
    """echonet_ef predictions.csv rows for the TEST split."""
    return pd.DataFrame({"sample_id": truth.FileName, "patient_id": truth.patient_id, "split": "TEST",
                         "EF": truth.EF.astype(float), "EF_pred": np.asarray(pred, float), "mode": mode})


def external_csv(truth: pd.DataFrame, pred: np.ndarray, out: Path) -> Path:
    """An external predictions file (sample_id, EF_pred) as a model trained elsewhere would write it."""
    pd.DataFrame({"sample_id": truth.FileName, "EF_pred": np.asarray(pred, float)}).to_csv(out, index=False)
    return out


def evaluate_external(root: Path, runs_root: Path, file: Path, name: str, task: str = "echonet_ef") -> Path:
    import re

    proc = cli("evaluate", "--task", task, "--predictions", str(file), "--name", name, f"data.root={root}",
               f"runs_root={runs_root}", "report=false", "progress=false", check=True)
    return Path(re.search(r"run folder: (.+)", proc.stdout).group(1).strip())

