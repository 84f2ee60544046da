"""The smoke reproduction on the twin learns EF from pixels (README command 1 in miniature)."""
from __future__ import annotations

import json

import pandas as pd

from .conftest import cli


def test_smoke_run_learns(tmp_path):
    run = tmp_path / "smoke"
    proc = cli("run", "--task", "echonet_ef", "--run-dir", str(run), "progress=false", "report=false",
               cache=tmp_path / "cache", check=True, timeout=1200)
    assert "mae" in proc.stdout
    pred = pd.read_csv(run / "predictions.csv")
    mae = (pred.EF - pred.EF_pred).abs().mean()
    mean_mae = (pred.EF - pred.EF.mean()).abs().mean()
    assert len(pred) >= 60
    assert mae <= 0.6 * mean_mae, f"MAE {mae:.2f} vs mean predictor {mean_mae:.2f}"
    reported = json.loads((run / "metrics.json").read_text())["mae"]["value"]
    assert abs(reported - mae) < 1e-4
