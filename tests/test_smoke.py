"""The smoke reproductions on the embedded twin learn from pixels (README command 1 in miniature).

Marked slow (seven minutes of training on 2 cores, which would push the default test run past its
25-minute budget): `.ci/run` trains the three smoke runs with `cardiobench run` into
``CARDIOBENCH_SMOKE_DIR``, then runs this file on those same runs (``pytest -m slow tests/test_smoke.py``;
the fixture reuses a finished run there and trains only what is missing) and gates them with
`cardiobench check`. Each smoke model is trained once."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import ROOT, cli

pytestmark = pytest.mark.slow


def _finished(run_dir: Path) -> bool:
    manifest = run_dir / "manifest.json"
    return manifest.is_file() and json.loads(manifest.read_text()).get("status") == "finished"


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory, smoke_cache) -> dict[str, Path]:
    """The three smoke runs, with the arguments `.ci/run` trains them with; a finished one is reused."""
    where = os.environ.get("CARDIOBENCH_SMOKE_DIR")
    root = (ROOT / where).resolve() if where else tmp_path_factory.mktemp("smoke")
    common = ["progress=false", "report=false", f"runs_root={root / 'runs'}"]
    runs = {task: root / task for task in ("echonet_seg", "echonet_ef", "acdc_seg")}
    extra = {"echonet_ef": [f"eval.segmentation_run={runs['echonet_seg']}"]}  # beat-by-beat reads its curves
    for task, run_dir in runs.items():
        if not _finished(run_dir):
            cli("run", "--task", task, "--run-dir", str(run_dir), *common, *extra.get(task, []), cache=smoke_cache,
                check=True, timeout=1800)
    return runs


def test_segmentation_smoke_learns(smoke_runs):
    d = smoke_runs["echonet_seg"]
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["dice"]["value"] >= 0.85, metrics["dice"]
    sizes = pd.read_csv(d / "size.csv")
    pred = pd.read_csv(d / "predictions.csv")
    assert set(sizes.Filename) >= set(pred.sample_id) and len(pred) >= 60
    # Detected end-systoles lie near the traced ones on most videos.
    near = []
    for name, g in sizes.groupby("Filename"):
        human = np.flatnonzero(g.HumanSmall.to_numpy() == 1)
        found = np.flatnonzero(g.ComputerSmall.to_numpy() == 1)
        if len(human) and len(found):
            near.append(np.abs(found - human[0]).min() <= 3)
    assert np.mean(near) >= 0.9


def test_ef_smoke_learns_in_every_mode(smoke_runs):
    d = smoke_runs["echonet_ef"]
    everything = pd.read_csv(d / "predictions.csv")
    assert list(everything["mode"].unique()) == ["single_clip", "first_clip", "all_clips", "beat_by_beat"]
    pred = everything[everything["mode"] == "single_clip"]
    mae = (pred.EF - pred.EF_pred).abs().mean()
    mean_mae = (pred.EF - pred.EF.mean()).abs().mean()
    assert len(pred) >= 60
    assert mae <= 0.6 * mean_mae, f"MAE {mae:.2f} vs mean predictor {mean_mae:.2f}"
    metrics = json.loads((d / "metrics.json").read_text())
    assert abs(metrics["mae"]["value"] - mae) < 1e-4
    # Averaging clips should not be worse than one random clip (EchoNet's finding); slack for 67 videos.
    for mode in ("all_clips", "beat_by_beat"):
        m = everything[everything["mode"] == mode]
        assert (m.EF - m.EF_pred).abs().mean() <= mae + 0.5, mode
    assert metrics["by_mode"]["beat_by_beat"]["beats"]["videos_without_beat"] <= 3


def test_acdc_smoke_learns(smoke_runs):
    """Mean Dice (LV, RV, MYO at ED and ES) >= 0.80 on TEST, LV EF bias within 5 points, its limits of
    agreement reported; masks in challenge naming; every artifact x severity scored."""
    d = smoke_runs["acdc_seg"]
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["dice"]["value"] >= 0.80, metrics["dice"]
    pred = pd.read_csv(d / "predictions.csv")
    clean = pred[pred.artifact == "clean"]
    assert metrics["dice"]["value"] == pytest.approx(clean.dice.mean(), abs=1e-12)
    assert set(clean.structure) == {"LV", "RV", "MYO"} and set(clean.phase) == {"ED", "ES"}
    ef = metrics["clinical"]["indices"]["lv_ef"]
    assert abs(ef["bias"]) <= 5 and ef["lower"] < ef["bias"] < ef["upper"], ef
    clinical = pd.read_csv(d / "clinical.csv")
    lv = clinical[clinical["index"] == "lv_ef"]
    assert ef["bias"] == pytest.approx((lv.pred - lv.true).mean(), abs=1e-6)  # clinical.csv: CSV-rounded floats
    masks = sorted(p.name for p in (d / "masks").iterdir())
    assert masks == sorted(f"{s}.nii.gz" for s in clean.sample_id.unique())
    cells = metrics["robustness"]["cells"]
    assert set(cells) == {"noise", "motion", "bias", "spike", "gamma", "blur", "ghosting"}
    assert all(set(v) == {"mild", "moderate", "severe"} for v in cells.values())


@pytest.mark.parametrize("task", ["echonet_seg", "echonet_ef", "acdc_seg"])
def test_smoke_passes_its_regression_gate(smoke_runs, task):
    proc = cli("check", str(smoke_runs[task]), "--reference", str(ROOT / "leaderboards" / "reference" / f"{task}.json"))
    assert proc.returncode == 0 and proc.stdout.startswith("OK"), proc.stdout + proc.stderr


def test_acdc_page_shows_structure_table_and_figures(smoke_runs, tmp_path):
    """The leaderboard page of the ACDC smoke run: the per-structure/phase table with CIs beside the
    published per-structure Dice, Bland-Altman plots, the robustness heat-map and the overlays."""
    import html
    import re

    site = tmp_path / "site"
    cli("report", str(smoke_runs["acdc_seg"]), "--out", str(site), check=True)
    page = (site / "acdc_seg.html").read_text()
    table = page[page.index('<h2>Tables</h2>'):page.index('<h2>Published</h2>')]
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", table)).split())
    metrics = json.loads((smoke_runs["acdc_seg"] / "metrics.json").read_text())
    cells = metrics["by_structure_phase"]["cells"]
    assert set(cells) == {f"{s}/{p}" for s in ("LV", "RV", "MYO") for p in ("ED", "ES")}
    for name, cell in cells.items():
        d = cell["dice"]
        assert d["low"] <= d["value"] <= d["high"]
        pub = {"LV": "0.95", "RV": "0.923", "MYO": "0.911"}[name.split("/")[0]]
        assert re.search(rf"{re.escape(name)} {d['value']:.3f} \[{d['low']:.3f}, {d['high']:.3f}\].* {pub} \[\d+\]",
                         text), name
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert {"LV EF: Bland-Altman", "LV EDV: Bland-Altman", "myocardial mass: Bland-Altman"} <= set(captions), captions
    assert any(c.startswith("Robustness: dice") for c in captions), captions
    overlay = next(c for c in captions if c.startswith("Predicted vs true contours"))
    assert overlay and all(w in page for w in ("(best, Dice", "(median, Dice", "(worst, Dice"))
