"""Seed groups on the leaderboard (issue 16): runs of one recipe that differ only by seed are one row with
the mean and SD over seeds and a two-level bootstrap interval; checked against numpy oracles written here.

Runs are made from predictions (no training): the reference baseline with seeds 0, 1, 2, another baseline
with seeds 0 and 1, and one run of a third baseline whose two seeds used different learning rates (two
recipes, so two rows)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from cardiobench import seeds
from cardiobench.config import spec_of

from .conftest import cli
from .runmaker import echo_test_set, ef_predictions, make_run

REFERENCE = "echonet_dynamic_r2plus1d"
OTHER = "echonet_dynamic_r3d"


def _mae(y, p):
    return float(np.abs(y - p).mean())


@pytest.fixture(scope="module")
def sweep(twin80, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeds")
    root, truth, y = echo_test_set(twin80, tmp / "echo60")
    rng = np.random.default_rng(3)
    preds = {(REFERENCE, s): y + rng.normal(0, 5.0 + s, len(y)) for s in (0, 1, 2)}
    preds.update({(OTHER, s): y + 1.5 + rng.normal(0, 6.0, len(y)) for s in (0, 1)})
    runs = tmp / "runs"
    for (name, s), p in preds.items():
        make_run(runs / name / f"s{s}", "echonet_ef", name, ef_predictions(truth, p), root, seed=s,
                 in_process=True)
    # the same baseline, seeds 0 and 1, but another learning rate for seed 1: not one recipe
    vm = {s: y - 2 + rng.normal(0, 7.0, len(y)) for s in (0, 1)}
    for s in (0, 1):
        path = make_run(runs / "videomae_ef" / f"s{s}", "echonet_ef", "videomae_ef", ef_predictions(truth, vm[s]), root,
                        seed=s, in_process=True)
        if s == 1:
            cfg = OmegaConf.load(path / "config.yaml")
            cfg.train.lr = float(cfg.train.lr) * 2
            (path / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    site = tmp / "site"
    cli("report", str(runs), "--out", str(site), check=True)
    records = json.loads((site / "echonet_ef.json").read_text())
    spec = spec_of(OmegaConf.load(runs / REFERENCE / "s0" / "config.yaml"))
    tables = {k: ef_predictions(truth, p) for k, p in preds.items()}
    return dict(runs=runs, y=y, truth=truth, preds=preds, records=records, page=(site / "echonet_ef.html").read_text(),
                spec=spec, tables=tables)


def test_one_row_per_recipe(sweep):
    rows = [(r["baseline"], r["n_seeds"], str(r["seed"])) for r in sweep["records"]]
    assert sorted(rows) == sorted([(REFERENCE, 3, "0, 1, 2"), (OTHER, 2, "0, 1"),
                                   ("videomae_ef", 1, "0"), ("videomae_ef", 1, "1")])


def test_mean_and_sd_over_seeds(sweep):
    y, preds = sweep["y"], sweep["preds"]
    rec = next(r for r in sweep["records"] if r["baseline"] == REFERENCE)
    per_seed = [_mae(y, preds[(REFERENCE, s)]) for s in (0, 1, 2)]
    assert rec["mae"] == pytest.approx(np.mean(per_seed), abs=1e-5)  # predictions.csv keeps 6 decimals
    assert rec["mae_sd_over_seeds"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-5)
    assert [rec["mae_per_seed"][str(s)] for s in (0, 1, 2)] == pytest.approx(per_seed, abs=1e-5)


def _oracle_two_level(groups: list[list[np.ndarray]], y: np.ndarray, patients: np.ndarray, b: int, seed: int = 0):
    """The protocol of cardiobench.seeds in a plain loop: per replicate, each group's seeds with replacement,
    then the patients (sorted ids) with replacement, shared; the mean MAE over the drawn seeds."""
    rng = np.random.default_rng(seed)
    ids = np.unique(patients)
    rows_of = {p: np.flatnonzero(patients == p) for p in ids}
    out = np.empty((b, len(groups)))
    for k in range(b):
        picks = [rng.integers(0, len(g), len(g)) for g in groups]
        rows = np.concatenate([rows_of[ids[i]] for i in rng.integers(0, len(ids), len(ids))])
        for j, (g, pick) in enumerate(zip(groups, picks)):
            out[k, j] = np.mean([_mae(y[rows], g[s][rows]) for s in pick])
    return out


def test_two_level_interval_against_a_loop_oracle(sweep):
    spec, truth = sweep["spec"], sweep["truth"]
    order = np.argsort(truth.FileName.to_numpy(str), kind="stable")  # rows in sample-id order, as aligned
    y = sweep["y"][order]
    group = [np.round(sweep["preds"][(REFERENCE, s)], 6)[order] for s in (0, 1, 2)]
    st = seeds.seed_stats([sweep["tables"][(REFERENCE, s)] for s in (0, 1, 2)], spec, "mae", n_resamples=300)
    rep = _oracle_two_level([group], y, truth.patient_id.to_numpy(str)[order], 300)[:, 0]
    assert (st.low, st.high) == pytest.approx(tuple(np.percentile(rep, [2.5, 97.5])), abs=1e-4)
    # the interval covers seed spread: wider than a patients-only bootstrap of one seed's MAE
    one = seeds.seed_stats([sweep["tables"][(REFERENCE, 0)]] * 3, spec, "mae", n_resamples=300)
    assert st.high - st.low > one.high - one.low


def test_compare_groups_per_seed_differences_and_p(sweep):
    spec, y, preds = sweep["spec"], sweep["y"], sweep["preds"]
    a = {s: sweep["tables"][(OTHER, s)] for s in (0, 1)}
    b = {s: sweep["tables"][(REFERENCE, s)] for s in (0, 1, 2)}
    d = seeds.compare_groups(a, b, spec, "mae", n_resamples=300)
    assert sorted(d.per_seed) == [0, 1]
    for s in (0, 1):
        assert d.per_seed[s] == pytest.approx(_mae(y, preds[(OTHER, s)]) - _mae(y, preds[(REFERENCE, s)]), abs=1e-5)
    truth = sweep["truth"]
    order = np.argsort(truth.FileName.to_numpy(str), kind="stable")
    ga = [np.round(preds[(OTHER, s)], 6)[order] for s in (0, 1)]
    gb = [np.round(preds[(REFERENCE, s)], 6)[order] for s in (0, 1, 2)]
    rep = _oracle_two_level([ga, gb], y[order], truth.patient_id.to_numpy(str)[order], 300)
    diff = rep[:, 0] - rep[:, 1]
    # the test-inversion convention: tails (1 + count) / (B + 1); a bound is the outermost replicate whose
    # tail is still >= 2.5 %; p twice the smaller tail, never below 2 / (B + 1)
    b = len(diff)
    tail_le = lambda v: (1 + np.sum(diff <= v)) / (b + 1)  # noqa: E731
    tail_ge = lambda v: (1 + np.sum(diff >= v)) / (b + 1)  # noqa: E731
    assert d.p_value == pytest.approx(min(1.0, max(2 * min(tail_le(0), tail_ge(0)), 2 / (b + 1))), abs=1e-12)
    low = min(v for v in diff if tail_le(v) >= 0.025)
    high = max(v for v in diff if tail_ge(v) >= 0.025)
    assert (d.low, d.high) == pytest.approx((low, high), abs=1e-6)  # the oracle reads 6-decimal predictions


def test_page_shows_mean_sd_seeds_and_how(sweep):
    page = sweep["page"]
    rec = next(r for r in sweep["records"] if r["baseline"] == REFERENCE)
    assert f"{rec['mae']:.3f} ± {rec['mae_sd_over_seeds']:.3f}" in page
    assert "3 seeds" in page and "2 seeds" in page
    assert "two-level bootstrap" in page and "resamples the seeds, then the test patients" in page
    other = next(r for r in sweep["records"] if r["baseline"] == OTHER)
    assert 0 <= other["mae_p_vs_reference"] <= 1 and "rmse_p_vs_reference" not in other
    assert "mae only here; cardiobench compare tests the rest" in page


def test_compare_cli_on_two_seed_groups(sweep, tmp_path):
    runs = sweep["runs"]
    out = tmp_path / "cmp.json"
    proc = cli("compare", str(runs / OTHER), str(runs / REFERENCE), "--n-resamples", "300", "--json", str(out),
               check=True)
    assert "seeds 0, 1: mean over seeds" in proc.stdout and "two-level bootstrap" in proc.stdout
    assert "per-seed a - b, mae: seed 0:" in proc.stdout
    got = json.loads(out.read_text())
    mae = next(r for r in got["comparisons"] if r["metric"] == "mae")
    y, preds = sweep["y"], sweep["preds"]
    want = np.mean([_mae(y, preds[(OTHER, s)]) for s in (0, 1)]) - np.mean([_mae(y, preds[(REFERENCE, s)])
                                                                         for s in (0, 1, 2)])
    assert mae["diff"] == pytest.approx(want, abs=1e-5)
    assert sorted(got["per_seed_differences"]["mae"]) == ["0", "1"]


def test_compare_refuses_a_folder_of_two_recipes(sweep):
    proc = cli("compare", str(sweep["runs"] / "videomae_ef"), str(sweep["runs"] / REFERENCE))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "2 different recipes" in proc.stderr
