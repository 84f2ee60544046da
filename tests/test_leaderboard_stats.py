"""The leaderboard's statistics against oracles written here: a reference-baseline run and two other
runs on the same 60 TEST videos (made from predictions, no training), rendered by `cardiobench report`.

Oracles: a naive O(n·m) DeLong for the paired AUC test, a plain-loop paired BCa bootstrap for MAE/RMSE/R² (its p by bisection on the interval),
statsmodels' Holm, and the published numbers read from the baseline files."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as ss
from statsmodels.stats.multitest import multipletests

from cardiobench.stats import format_p

from .conftest import cli
from .runmaker import echo_test_set, ef_predictions, make_run

REFERENCE = "echonet_dynamic_r2plus1d"
# The page draws as many resamples as `cardiobench compare` (9 999) from seed 0; the oracle draws the same
# ones (a BCa p-value's Monte-Carlo spread is a few hundredths at smaller sizes, too wide to tell a wrong
# inversion from noise).
B_ORACLE = 9999
P_TOL = 0.003  # what remains: the page's (1 + count) / (B + 1) against the oracle's interpolated percentiles

STATS = {
    "mae": lambda y, p: np.abs(y - p).mean(),
    "rmse": lambda y, p: np.sqrt(np.square(y - p).mean()),
    "r2": lambda y, p: 1 - np.square(y - p).sum() / np.square(y - y.mean()).sum(),  # sklearn's r2_score
}


def naive_paired_bootstrap_p(stat, y, a, b, seed=0) -> float:
    """Two-sided p of stat(a) - stat(b) that the page's 95 % BCa interval implies: resampling videos
    in a plain loop, a loop jackknife, and a bisection for the level at which the interval stops
    covering 0 (the interval excludes 0 exactly when p < 1 - level)."""
    d = stat(y, a) - stat(y, b)
    n = len(y)
    rng = np.random.default_rng(seed)
    boot = np.empty(B_ORACLE)
    for k in range(B_ORACLE):
        i = rng.integers(0, n, n)
        boot[k] = stat(y[i], a[i]) - stat(y[i], b[i])
    jack = np.array([stat(np.delete(y, i), np.delete(a, i)) - stat(np.delete(y, i), np.delete(b, i))
                     for i in range(n)])
    z0 = ss.norm.ppf((np.sum(boot < d) + 0.5 * np.sum(boot == d)) / B_ORACLE)
    u = jack.mean() - jack
    acc = (u**3).sum() / (6 * (u**2).sum() ** 1.5)

    def excludes_zero(p):  # the BCa interval at level 1 - p (Efron & Tibshirani 1993, 14.3)
        z = ss.norm.ppf(p / 2)
        lo = ss.norm.cdf(z0 + (z0 + z) / (1 - acc * (z0 + z)))
        hi = ss.norm.cdf(z0 + (z0 - z) / (1 - acc * (z0 - z)))
        low, high = np.percentile(boot, [100 * lo, 100 * hi])
        return low > 0 or high < 0

    if excludes_zero(1e-6):
        return 0.0
    lo, hi = 1e-6, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if excludes_zero(mid) else (mid, hi)
    return hi


def naive_delong_p(label, score_a, score_b) -> float:
    """Paired DeLong test (DeLong, DeLong & Clarke-Pearson 1988) from the full n_cases x n_controls kernel."""
    label = np.asarray(label).astype(bool)
    v10, v01, aucs = [], [], []
    for s in (score_a, score_b):
        x, y = s[label], s[~label]
        psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
        aucs.append(psi.mean())
    s10, s01 = np.cov(v10), np.cov(v01)
    cov = s10 / label.sum() + s01 / (~label).sum()
    z = (aucs[0] - aucs[1]) / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    return float(2 * ss.norm.sf(abs(z)))


@pytest.fixture(scope="module")
def board(twin80, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("board")
    root, truth, y = echo_test_set(twin80, tmp / "echo60")
    rng = np.random.default_rng(5)
    preds = {REFERENCE: y + rng.normal(0, 5.2, len(y)),              # MAE 4.1, tied with the best
             "echonet_dynamic_r3d": y + rng.normal(0, 5.6, len(y)),   # the best here
             "videomae_ef": y + 2.5 + rng.normal(0, 7.0, len(y))}     # clearly worse
    runs = tmp / "runs"
    for name, p in preds.items():
        make_run(runs / name, "echonet_ef", name, ef_predictions(truth, p), root)
    site = tmp / "site"
    cli("report", str(runs), "--out", str(site), check=True)
    records = {r["baseline"]: r for r in json.loads((site / "echonet_ef.json").read_text())}
    page = (site / "echonet_ef.html").read_text()
    order = np.argsort(truth.FileName.to_numpy(str), kind="stable")  # the page's row order: by sample id
    return dict(y=y, preds=preds, records=records, page=page, order=order, runs=runs)


def _page_row(page: str, baseline: str) -> str:
    """The text of the runs-table row of ``baseline`` (tags stripped, entities decoded)."""
    table = page[page.index('<table id="runs"'):]
    table = table[:table.index("</table>")]
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", table, flags=re.S):
        text = html.unescape(re.sub(r"<[^>]+>", " ", tr))
        if re.search(rf"\b{re.escape(baseline)}\b", text) and "baseline / model" not in text:
            return " ".join(text.split())
    raise AssertionError(f"no row for {baseline}")


def test_p_values_against_naive_oracles(board):
    y, preds, rec = board["y"], board["preds"], board["records"]
    hf = (y < 50).astype(int)
    assert 2 <= hf.sum() <= len(hf) - 2
    ref = preds[REFERENCE]
    assert "mae_p_vs_reference" not in rec[REFERENCE]  # the reference is not tested against itself
    o = board["order"]
    for name in ("echonet_dynamic_r3d", "videomae_ef"):
        for metric, stat in STATS.items():
            oracle = naive_paired_bootstrap_p(stat, y[o], preds[name][o], ref[o])
            assert rec[name][f"{metric}_p_vs_reference"] == pytest.approx(oracle, abs=P_TOL), (name, metric)
        oracle = naive_delong_p(hf, -preds[name], -ref)
        assert rec[name]["auc_ef50_p_vs_reference"] == pytest.approx(oracle, abs=1e-9), name


def test_compare_and_check_give_the_page_p_for_the_same_pair(board, tmp_path):
    """One pair, one p: `cardiobench compare` prints the page's raw p, and `check` the same two-sided p
    beside its one-sided gate."""
    runs = board["runs"]
    out = tmp_path / "cmp.json"
    cli("compare", str(runs / "videomae_ef"), str(runs / REFERENCE), "--json", str(out), check=True)
    shown = {c["metric"]: c for c in json.loads(out.read_text())["comparisons"]}
    rec = board["records"]["videomae_ef"]
    for metric in (*STATS, "auc_ef50"):
        assert shown[metric]["p_value"] == rec[f"{metric}_p_vs_reference"], metric
        excludes = shown[metric]["low"] > 0 or shown[metric]["high"] < 0
        assert excludes == (shown[metric]["p_value"] < 0.05), metric
    from cardiobench.check import write_reference
    from cardiobench.runs import Run

    ref = tmp_path / "echonet_ef.json"
    write_reference(Run.open(runs / REFERENCE), ref, tolerance=100.0, command="test")
    proc = cli("check", str(runs / "videomae_ef"), "--reference", str(ref))
    two_sided = re.search(r"two-sided p = ([^,]+), as compare", proc.stdout + proc.stderr).group(1)
    assert two_sided == format_p(shown["mae"]["p_value"], shown["mae"]["p_floor"])


def test_holm_across_rows_is_statsmodels_holm(board):
    rec = board["records"]
    others = ["echonet_dynamic_r3d", "videomae_ef"]
    differs_from_bonferroni = False
    for metric in (*STATS, "auc_ef50"):
        raw = [rec[n][f"{metric}_p_vs_reference"] for n in others]
        holm = multipletests(raw, method="holm")[1]
        bonferroni = np.minimum(1, np.asarray(raw) * len(raw))
        differs_from_bonferroni |= not np.allclose(holm, bonferroni)
        for n, h in zip(others, holm):
            assert rec[n][f"{metric}_p_vs_reference_holm"] == pytest.approx(h, abs=1e-12), (n, metric)
    assert differs_from_bonferroni  # these data would tell a Bonferroni correction from Holm's


def test_tie_group_against_oracle(board):
    y, preds, rec = board["y"], board["preds"], board["records"]
    order = sorted(preds, key=lambda n: np.abs(y - preds[n]).mean())
    best = order[0]
    assert rec[best]["tied_with_best"] is True and f"mae_p_vs_best" not in rec[best]
    o = board["order"]
    raw = [naive_paired_bootstrap_p(STATS["mae"], y[o], preds[n][o], preds[best][o]) for n in order[1:]]
    adjusted = multipletests(raw, method="holm")[1]
    assert all(abs(a - 0.05) > 0.03 for a in adjusted)  # far from the boundary: Monte-Carlo cannot flip it
    for n, p_raw, p_adj in zip(order[1:], raw, adjusted):
        assert rec[n]["mae_p_vs_best"] == pytest.approx(p_raw, abs=P_TOL)
        assert rec[n]["tied_with_best"] is bool(p_adj >= 0.05), n
    assert {rec[n]["tied_with_best"] for n in order[1:]} == {True, False}  # one tied, one worse


def test_twin_rows_are_never_compared_with_published_numbers(board):
    rec = board["records"]
    for name in (REFERENCE, "videomae_ef"):
        r = rec[name]
        assert r["published"] is None and r["delta_vs_published"] is None and r["published_in_ci"] is None
        assert "synthetic twin" in r["published_not_compared"]
    assert rec["echonet_dynamic_r3d"]["published_not_compared"] == "no published number of this method"


def test_page_shows_the_same_numbers(board):
    rec, page = board["records"], board["page"]
    for name, r in rec.items():
        row = _page_row(page, name)
        if r.get("mae_p_vs_reference_holm") is not None:
            for metric in STATS:
                assert "%.3g" % r[f"{metric}_p_vs_reference_holm"] in row, (name, metric, row)
            # a compared metric that is not a headline one sits in the per-metric table, with its p
            secondary = page[page.index('<table id="secondary"'):]
            secondary = html.unescape(re.sub(r"<[^>]+>", " ", secondary[:secondary.index("</table>")]))
            assert "p %.3g" % r["auc_ef50_p_vs_reference_holm"] in secondary, name
        if r["published"] is not None:
            assert "%+.3f" % r["delta_vs_published"] in row
            assert (" yes " if r["published_in_ci"] else " no ") in f" {row} "
        assert ("best / tied" in row) is r["tied_with_best"]
        assert "%.3f" % r["mae"] in row
