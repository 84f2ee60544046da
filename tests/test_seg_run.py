"""echonet_seg end to end on a tiny twin with bad tracings, and echonet_ef's beat-by-beat mode on its curves."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from .conftest import cli

SEG_TINY = ["image.size=32", "train.epochs=1", "train.batch_size=8", "progress=false", "report=false"]


@pytest.fixture(scope="module")
def bad_tracings(twin, tmp_path_factory):
    """The tiny twin with one traced frame beyond its video's end and one outline off the image."""
    root = tmp_path_factory.mktemp("bad") / "echonet"
    shutil.copytree(twin, root)
    tr = pd.read_csv(root / "VolumeTracings.csv")
    flist = pd.read_csv(root / "FileList.csv")
    names = [f"{n}.avi" for n in flist.FileName]
    beyond, outside = names[0], names[1]
    first = tr.FileName == beyond
    tr.loc[first & (tr.Frame == tr[first].Frame.max()), "Frame"] = 9999
    for c in ("X1", "X2"):
        tr.loc[tr.FileName == outside, c] += 500.0
    tr.to_csv(root / "VolumeTracings.csv", index=False)
    return root, beyond[:-4], outside[:-4]


@pytest.fixture(scope="module")
def seg_run(bad_tracings, cache_dir, tmp_path_factory):
    root, _, _ = bad_tracings
    d = tmp_path_factory.mktemp("segruns") / "seg"
    proc = cli("run", "--task", "echonet_seg", "--run-dir", str(d), f"data.root={root}", *SEG_TINY,
               cache=cache_dir, check=True)
    return d, proc


def test_bad_tracings_are_reported_and_the_run_finishes(seg_run, bad_tracings):
    d, proc = seg_run
    _, beyond, outside = bad_tracings
    assert "Traceback" not in proc.stderr
    skipped = pd.read_csv(d / "skipped.csv")
    why = dict(zip(skipped.sample_id, skipped.problem))
    assert "beyond the video's" in why[beyond] and "9999" in why[beyond]
    assert "lies outside the 112x112 image" in why[outside]
    assert all(p.endswith(".avi") for p in skipped.file)
    pred = pd.read_csv(d / "predictions.csv")
    assert beyond not in set(pred.sample_id) and outside not in set(pred.sample_id)
    assert len(pred) >= 1 and json.loads((d / "manifest.json").read_text())["status"] == "finished"


def test_seg_run_folder_metrics_and_area_curves(seg_run, bad_tracings):
    d, _ = seg_run
    root = bad_tracings[0]
    metrics = json.loads((d / "metrics.json").read_text())
    for k in ("dice", "dice_ed", "dice_es", "dice_mean", "dice_mean_ed", "dice_mean_es"):
        assert 0 <= metrics[k]["value"] <= 1 and metrics[k]["low"] <= metrics[k]["value"] <= metrics[k]["high"]
    pred = pd.read_csv(d / "predictions.csv")
    pooled = 2 * (pred.inter_ED + pred.inter_ES).sum() / (pred[["pred_ED", "true_ED", "pred_ES", "true_ES"]].sum().sum())
    assert metrics["dice"]["value"] == pytest.approx(pooled)
    sizes = pd.read_csv(d / "size.csv")
    assert list(sizes.columns) == ["Filename", "Split", "Frame", "Size", "HumanLarge", "HumanSmall", "ComputerSmall"]
    flist = pd.read_csv(root / "FileList.csv")
    test = flist[flist.Split == "TEST"]
    assert set(sizes.Filename) == set(test.FileName)  # every TEST video, bad tracings or not
    frames = sizes.groupby("Filename").Frame.max() + 1
    assert (frames[test.FileName].to_numpy() == test.NumberOfFrames.to_numpy()).all()
    # `evaluate` recomputes the same metrics from predictions.csv alone.
    before = metrics["dice"]["value"]
    cli("evaluate", str(d), check=True)
    assert json.loads((d / "metrics.json").read_text())["dice"]["value"] == before


def test_beat_by_beat_uses_the_segmentation_curves(seg_run, bad_tracings, cache_dir, tmp_path):
    d, _ = seg_run
    root = bad_tracings[0]
    ef = tmp_path / "ef"
    tiny = ["clip.frames=8", "clip.period=4", "clip.size=24", "train.epochs=1", "train.batch_size=4",
            "progress=false", "report=false", "eval.all_clips_stride=8"]
    cli("run", "--task", "echonet_ef", "--run-dir", str(ef), f"data.root={root}", *tiny,
        f"eval.segmentation_run={d}", cache=cache_dir, check=True)
    pred = pd.read_csv(ef / "predictions.csv")
    assert list(pred["mode"].unique()) == ["single_clip", "first_clip", "all_clips", "beat_by_beat"]
    bb = pred[pred["mode"] == "beat_by_beat"]
    assert bb.beats.between(0, 5).all() and (bb.beats > 0).any()
    assert (bb.beat_fallback.isna() == (bb.beats > 0)).all()
    per_beat = pd.read_csv(ef / "beats.csv")  # one row per beat; their mean is the video's prediction
    assert per_beat.groupby("sample_id").size().sum() == bb.beats.sum()
    means = per_beat.groupby("sample_id").EF_pred.mean()
    with_beats = bb[bb.beats > 0].set_index("sample_id")
    assert (means[with_beats.index] - with_beats.EF_pred).abs().max() < 1e-4
    m = json.loads((ef / "metrics.json").read_text())
    info = m["by_mode"]["beat_by_beat"]["beats"]
    assert info["videos"] == len(bb) and info["videos_without_beat"] == int((bb.beats == 0).sum())
    man = json.loads((ef / "manifest.json").read_text())
    assert man["beat_by_beat"]["segmentation_run"] == str(d.resolve())
    # No segmentation run: the mode is skipped with a warning, the others still run.
    other = tmp_path / "ef_noseg"
    proc = cli("run", "--task", "echonet_ef", "--run-dir", str(other), f"data.root={root}", *tiny,
               "eval.segmentation_run=null", cache=cache_dir, check=True)
    assert "beat_by_beat skipped" in proc.stderr
    assert list(pd.read_csv(other / "predictions.csv")["mode"].unique()) == ["single_clip", "first_clip", "all_clips"]


def test_leaderboard_page_draws_the_segmentation(seg_run, tmp_path):
    d, _ = seg_run
    cli("report", str(d), "--out", str(tmp_path / "site"), check=True)
    page = (tmp_path / "site" / "echonet_seg.html").read_text()
    for title in ("Dice per video", "LV area: Bland-Altman", "LV area curves", "p vs reference (dice)"):
        assert title in page
    assert page.count("<svg") == 3 and "auc_ef50" not in page


def test_missing_segmentation_run_is_refused_before_training(bad_tracings, cache_dir, tmp_path):
    root = bad_tracings[0]
    proc = cli("run", "--task", "echonet_ef", "--run-dir", str(tmp_path / "ef"), f"data.root={root}",
               "progress=false", "report=false", f"eval.segmentation_run={tmp_path / 'nope'}", cache=cache_dir)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{tmp_path / 'nope' / 'size.csv'}: eval.segmentation_run has no size.csv" in proc.stderr
    assert not (tmp_path / "ef" / "checkpoints" / "last.pt").exists()


def test_auto_finds_the_newest_finished_segmentation_run_on_the_same_data(seg_run, tmp_path):
    from omegaconf import OmegaConf

    from cardiobench.data.source import DataSource
    from cardiobench.tasks.echonet.inference import segmentation_sizes

    d, _ = seg_run
    fp = json.loads((d / "manifest.json").read_text())["data"]["fingerprint"]
    base = tmp_path / "runs" / "echonet_seg" / "echonet_dynamic_deeplabv3"

    def place(name: str, **manifest) -> None:
        shutil.copytree(d, base / name)
        m = json.loads((base / name / "manifest.json").read_text())
        m.update(manifest)
        (base / name / "manifest.json").write_text(json.dumps(m))

    place("old", ended="2026-01-01T00:00:00+00:00")
    place("new", ended="2026-06-01T00:00:00+00:00")
    place("unfinished", status="running", ended="2026-12-01T00:00:00+00:00")
    place("other-data", data={"fingerprint": "0000"}, ended="2026-12-01T00:00:00+00:00")
    cfg = OmegaConf.create({"runs_root": str(tmp_path / "runs"), "eval": {"segmentation_run": "auto"}})
    found, sizes = segmentation_sizes(cfg, DataSource(d, True, fp))
    assert found == base / "new" and len(sizes) == len(pd.read_csv(d / "size.csv"))
    assert segmentation_sizes(cfg, DataSource(d, True, "ffff")) is None
