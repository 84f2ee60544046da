"""The per-organ figure kinds of the CT vision-language task: loss curves from history.csv and organ
label overlays from an .npz artifact (drawn from the run folder alone, no torch)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from cardiobench.report import figures
from cardiobench.runs import Run

ORGANS = ["lung", "heart", "liver"]


@pytest.fixture
def run(tmp_path) -> Run:
    r = Run(tmp_path / "run")
    r.path.mkdir()
    return r


def _axes(svg: str) -> int:
    return len(re.findall(r'<g id="axes_\d+"', svg))


def _history(run: Run, val: bool) -> None:
    rows = []
    for e in range(1, 5):
        row = {"epoch": e, "train_loss": 3.0 / e, "val_loss": 3.5 / e}
        for k, o in enumerate(ORGANS):
            row[f"train_loss_{o}"] = (k + 1.0) / e
            if val:
                row[f"val_loss_{o}"] = (k + 1.5) / e
        rows.append(row)
    rows[2]["train_loss_liver"] = np.nan  # liver added nothing in epoch 3
    if val:
        rows[1]["val_loss_heart"] = np.nan
    pd.DataFrame(rows).to_csv(run.path / "history.csv", index=False)


def _draw(kind: str, run: Run, args: dict | None = None) -> list[tuple[str, str]]:
    return figures.draw(kind, run, pd.DataFrame(), args or {}, {})


@pytest.mark.parametrize("val", [False, True])
def test_loss_curves_one_line_per_organ(run, val):
    _history(run, val)
    out = _draw("loss_curves", run)
    assert len(out) == 1
    title, svg = out[0]
    assert title == "Loss per organ" and svg.startswith("<svg")
    assert _axes(svg) == (2 if val else 1)  # a validation panel only when val_loss_<organ> exists
    assert ("validation loss per organ" in svg) is val and "train loss per organ" in svg
    for o in ORGANS:
        assert f">{o}<" in svg  # the legend's text (svg.fonttype "none": text stays text)
    assert "train_loss" not in svg  # labelled by organ, not by column


def test_loss_curves_prefix_and_gaps(run):
    pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.8, 0.6], "loss_a": [1.0, np.nan, 0.5],
                  "loss_b": [np.nan, np.nan, np.nan]}).to_csv(run.path / "h.csv", index=False)
    (title, svg), = _draw("loss_curves", run, {"artifact": "h.csv", "prefix": "loss_"})
    assert ">a<" in svg and ">b<" not in svg  # an organ with no value at all is left out
    assert _axes(svg) == 1


def test_loss_curves_nothing_to_draw(run):
    assert _draw("loss_curves", run) == []  # no file
    pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}).to_csv(
        run.path / "history.csv", index=False)
    assert _draw("loss_curves", run) == []  # no per-organ column
    (run.path / "history.csv").write_text("")
    assert _draw("loss_curves", run) == []  # empty file


def _overlays(run: Run, name: str = "organ_overlays.npz", organs=("lung", "heart", "liver", "spleen")) -> None:
    rng = np.random.default_rng(0)
    k, h, w = 3, 16, 20
    labels = np.zeros((k, h, w), np.uint8)
    labels[0, 2:6, 2:8] = 1
    labels[1, 8:12, 5:9] = 2
    labels[2, 3:7, 10:15] = 3  # organ 4 (spleen) appears in no panel
    np.savez(run.path / name, image=rng.random((k, h, w)).astype(np.float32), labels=labels,
             organs=np.array(organs, dtype=str),
             titles=np.array([f"valid_{i}_a_1.nii.gz, axial z={8 * i}" for i in range(k)], dtype=str))


def test_organ_overlays_panels_and_legend(run):
    _overlays(run)
    out = _draw("organ_overlays", run)
    assert len(out) == 1
    title, svg = out[0]
    assert svg.startswith("<svg") and _axes(svg) == 3
    assert svg.count("<image") == 3  # per panel, the grey slice and its overlay composited into one image
    for i in range(3):
        assert f"valid_{i}_a_1.nii.gz, axial z={8 * i}" in svg
    for o in ORGANS:
        assert f">{o}<" in svg
    assert "spleen" not in svg  # the legend lists only the organs seen


def test_organ_overlays_custom_artifact_and_missing(run):
    assert _draw("organ_overlays", run) == []
    _overlays(run, "x.npz")
    assert len(_draw("organ_overlays", run, {"artifact": "x.npz"})) == 1
    assert _draw("organ_overlays", run) == []  # the default name is still absent


def test_organ_overlays_object_arrays_are_not_read(run):
    """Names stored as an object array need pickle: the kind reads with allow_pickle=False and draws nothing."""
    np.savez(run.path / "organ_overlays.npz", image=np.zeros((1, 4, 4)), labels=np.zeros((1, 4, 4), np.uint8),
             organs=np.array(["lung"], dtype=object), titles=np.array(["t"], dtype=object))
    assert _draw("organ_overlays", run) == []
