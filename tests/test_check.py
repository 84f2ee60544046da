"""`cardiobench check`: a one-sided paired test against the stored reference predictions, a tolerance,
and a refusal of other data; both directions (MAE lower-better, Dice higher-better)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import cli
from .runmaker import evaluate_external, external_csv, make_run, split_twin, truth_of


@pytest.fixture(scope="module")
def echo60(twin80, tmp_path_factory) -> Path:
    return split_twin(twin80, tmp_path_factory.mktemp("gate") / "echo60", n_test=60)


def _check(run: Path, ref: Path) -> tuple[int, str]:
    proc = cli("check", str(run), "--reference", str(ref))
    assert "Traceback" not in proc.stderr
    return proc.returncode, proc.stdout + proc.stderr


def _write_reference(run: Path, ref: Path, tolerance: float) -> dict:
    cli("check", str(run), "--reference", str(ref), "--write-reference", "--tolerance", str(tolerance), check=True)
    return json.loads(ref.read_text())


def _keep_gain(y: np.ndarray, p: np.ndarray, keep: float) -> np.ndarray:
    """Predictions blended toward the mean EF until they keep ``keep`` of their MAE gain over the mean predictor."""
    mean_mae, mae = np.abs(y - y.mean()).mean(), np.abs(y - p).mean()
    target = mean_mae - keep * (mean_mae - mae)
    lo, hi = 0.0, 1.0
    for _ in range(60):
        w = (lo + hi) / 2
        if np.abs(y - ((1 - w) * p + w * y.mean())).mean() < target:
            lo = w
        else:
            hi = w
    return (1 - lo) * p + lo * y.mean()


@pytest.fixture(scope="module")
def ef_gate(echo60, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ef_gate")
    truth = truth_of(echo60)
    y = truth.EF.to_numpy(float)
    good = y + np.random.default_rng(0).normal(0, 4, len(y))
    runs = tmp / "runs"
    ref_run = evaluate_external(echo60, runs, external_csv(truth, good, tmp / "good.csv"), "reference-model")
    ref = tmp / "reference" / "echonet_ef.json"
    stored = _write_reference(ref_run, ref, 0.5)
    return dict(root=echo60, truth=truth, y=y, good=good, runs=runs, tmp=tmp, ref=ref, stored=stored, ref_run=ref_run)


def _ef_run(g: dict, pred: np.ndarray, name: str) -> Path:
    return evaluate_external(g["root"], g["runs"], external_csv(g["truth"], pred, g["tmp"] / f"{name}.csv"), name)


def test_reference_holds_its_predictions(ef_gate):
    stored, ref = ef_gate["stored"], ef_gate["ref"]
    assert stored["metric"] == "mae" and stored["direction"] == "lower" and stored["tolerance"] == 0.5
    pred = pd.read_csv(ref.parent / stored["predictions"])
    assert len(pred) == 60 and np.allclose(np.sort(pred.EF_pred), np.sort(ef_gate["good"]), atol=1e-6)
    assert stored["data_fingerprint"]


def test_rerun_and_harmless_change_pass(ef_gate):
    code, out = _check(_ef_run(ef_gate, ef_gate["good"], "rerun"), ef_gate["ref"])
    assert code == 0 and out.startswith("OK") and "p = 1" in out
    moved = ef_gate["good"].copy()
    moved[0] += 0.1 * np.sign(moved[0] - ef_gate["y"][0])  # one prediction 0.1 further from the truth
    code, out = _check(_ef_run(ef_gate, moved, "moved"), ef_gate["ref"])
    assert code == 0 and out.startswith("OK"), out


def test_better_run_passes(ef_gate):
    better = (ef_gate["good"] + ef_gate["y"]) / 2
    code, out = _check(_ef_run(ef_gate, better, "better"), ef_gate["ref"])
    assert code == 0 and "worse by -" in out, out


def test_run_keeping_70_percent_of_its_gain_fails(ef_gate):
    y, good = ef_gate["y"], ef_gate["good"]
    degraded = _keep_gain(y, good, 0.70)
    mean_mae, good_mae = np.abs(y - y.mean()).mean(), np.abs(y - good).mean()
    assert (mean_mae - np.abs(y - degraded).mean()) / (mean_mae - good_mae) == pytest.approx(0.70, abs=1e-6)
    run = _ef_run(ef_gate, degraded, "degraded")
    code, out = _check(run, ef_gate["ref"])
    assert code == 1 and out.startswith("REGRESSION") and "significantly worse" in out
    assert "more than the tolerance" in out
    # The paired test alone catches it: with a tolerance no run could exceed, it still fails.
    lenient = ef_gate["tmp"] / "lenient" / "echonet_ef.json"
    _write_reference(ef_gate["ref_run"], lenient, 100.0)
    code, out = _check(run, lenient)
    assert code == 1 and "REGRESSION (significantly worse)" in out, out


def test_worse_beyond_tolerance_fails_without_significance(ef_gate):
    strict = ef_gate["tmp"] / "strict" / "echonet_ef.json"
    _write_reference(ef_gate["ref_run"], strict, 0.001)
    moved = ef_gate["good"].copy()
    away = np.sign(moved[:3] - ef_gate["y"][:3])
    moved[:3] += 0.1 * away * np.array([1, 1, -1])  # two worse, one better: worse by 0.0017, not significant
    code, out = _check(_ef_run(ef_gate, moved, "moved3"), strict)
    assert code == 1 and "REGRESSION (worse by more than the tolerance)" in out, out


def test_other_data_fails(ef_gate, twin80):
    t = truth_of(twin80)
    other = evaluate_external(twin80, ef_gate["runs"], external_csv(t, t.EF.to_numpy(), ef_gate["tmp"] / "o.csv"),
                              "other-data")
    code, out = _check(other, ef_gate["ref"])
    assert code == 1 and "DIFFERENT DATA" in out


def test_reference_without_predictions_is_refused(ef_gate, tmp_path):
    ref = tmp_path / "echonet_ef.json"
    shutil.copy(ef_gate["ref"], ref)
    code, out = _check(ef_gate["ref_run"], ref)
    assert code == 1 and "echonet_ef.predictions.csv: the reference's predictions are missing" in out
    code, out = _check(ef_gate["ref_run"], tmp_path / "nope.json")
    assert code == 1 and "reference file not found" in out


# ----------------------------------------------------------------------------- Dice (higher is better)


def _seg_predictions(truth: pd.DataFrame, seed: int, overlap: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(0)  # the traced areas are the truth: the same for every model
    true = {ph: rng.integers(300, 800, len(truth)) for ph in ("ED", "ES")}
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"sample_id": truth.FileName, "patient_id": truth.patient_id, "split": "TEST"})
    for ph in ("ED", "ES"):
        pred = np.round(true[ph] * rng.normal(1, 0.04, len(truth))).astype(int)
        inter = np.round(np.minimum(pred, true[ph]) * rng.uniform(0.95, 0.99, len(truth)) * overlap).astype(int)
        df[f"frame_{ph}"] = 10 if ph == "ED" else 30
        df[f"true_{ph}"], df[f"pred_{ph}"], df[f"inter_{ph}"] = true[ph], pred, inter
    return df


@pytest.fixture(scope="module")
def seg_gate(echo60, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seg_gate")
    truth = truth_of(echo60)
    good = _seg_predictions(truth, 1)
    ref_run = make_run(tmp / "runs" / "ref", "echonet_seg", "echonet_dynamic_deeplabv3", good, echo60)
    ref = tmp / "reference" / "echonet_seg.json"
    stored = _write_reference(ref_run, ref, 0.02)
    return dict(root=echo60, truth=truth, good=good, tmp=tmp, ref=ref, stored=stored)


def _seg_run(g: dict, df: pd.DataFrame, name: str) -> Path:
    return make_run(g["tmp"] / "runs" / name, "echonet_seg", "echonet_dynamic_deeplabv3", df, g["root"])


def _dice(df: pd.DataFrame) -> float:
    return 2 * (df.inter_ED + df.inter_ES).sum() / (df.pred_ED + df.true_ED + df.pred_ES + df.true_ES).sum()


def test_dice_gate_both_ways(seg_gate):
    assert seg_gate["stored"]["direction"] == "higher" and seg_gate["stored"]["metric"] == "dice"
    good = seg_gate["good"]
    code, out = _check(_seg_run(seg_gate, good, "rerun"), seg_gate["ref"])
    assert code == 0 and out.startswith("OK"), out
    tiny = good.copy()
    tiny.loc[0, "inter_ED"] -= 1  # one pixel less overlap on one frame
    code, out = _check(_seg_run(seg_gate, tiny, "tiny"), seg_gate["ref"])
    assert code == 0, out
    better = good.assign(inter_ED=np.minimum(good.pred_ED, good.true_ED), inter_ES=np.minimum(good.pred_ES, good.true_ES))
    assert _dice(better) > _dice(good)
    code, out = _check(_seg_run(seg_gate, better, "better"), seg_gate["ref"])
    assert code == 0, out
    # 1 % less overlap everywhere: inside the 0.02 tolerance, but every video is worse.
    slightly = good.assign(inter_ED=np.floor(good.inter_ED * 0.99).astype(int),
                           inter_ES=np.floor(good.inter_ES * 0.99).astype(int))
    assert 0 < _dice(good) - _dice(slightly) < 0.02
    code, out = _check(_seg_run(seg_gate, slightly, "slightly"), seg_gate["ref"])
    assert code == 1 and "REGRESSION (significantly worse)" in out, out
    much = good.assign(inter_ED=(good.inter_ED * 0.93).astype(int), inter_ES=(good.inter_ES * 0.93).astype(int))
    code, out = _check(_seg_run(seg_gate, much, "much"), seg_gate["ref"])
    assert code == 1 and "significantly worse and worse by more than the tolerance" in out, out
