"""The main score per declared subgroup with intervals and a heterogeneity test (torch-free), and its
place on the rendered page."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cardiobench.config import load_task
from cardiobench.evaluation.subgroups import heterogeneity, levels_of, subgroup_table
from cardiobench.spec import SubgroupSpec

from .conftest import cli
from .runmaker import make_run

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ["DCM", "HCM", "MINF", "NOR", "RV"]


def _acdc(shift: dict[str, float] | None = None) -> pd.DataFrame:
    """The stored ACDC reference predictions (its real columns) with a pathology group per patient;
    ``shift`` lowers the Dice of some groups."""
    p = pd.read_csv(ROOT / "leaderboards/reference/acdc_seg.predictions.csv", dtype={"sample_id": str, "patient_id": str})
    pids = sorted(p.patient_id.unique())
    p["group"] = p.patient_id.map({pid: GROUPS[i % 5] for i, pid in enumerate(pids)})
    for g, d in (shift or {}).items():
        p.loc[p.group == g, "dice"] -= d
    return p


def test_cochran_q_and_i2_equal_statsmodels():
    from statsmodels.stats.meta_analysis import combine_effects

    levels = [dict(value=v, low=v - 1.96 * s, high=v + 1.96 * s) for v, s in
              ((0.91, 0.01), (0.86, 0.02), (0.93, 0.015), (0.89, 0.03))]
    h = heterogeneity(levels, 0.95)
    se = np.array([(r["high"] - r["low"]) / (2 * 1.959963984540054) for r in levels])
    ref = combine_effects(np.array([r["value"] for r in levels]), se ** 2)
    assert h["q"] == pytest.approx(ref.q, rel=1e-9) and h["df"] == 3
    assert h["i2"] == pytest.approx(ref.i2, rel=1e-9)
    assert heterogeneity(levels[:1], 0.95)["p"] is None  # one subgroup: no test, and says so


def test_levels_bands_and_unknowns():
    sub = SubgroupSpec(column="age", bins=[0, 50, 65, 200])
    got = levels_of(pd.Series([30, 50, 64.9, 70, None, "057Y"]), sub).tolist()
    assert got[:4] == ["0-50", "50-65", "50-65", ">= 65"] and pd.isna(got[4]) and pd.isna(got[5])


def _many(shift: dict[str, float] | None = None, n: int = 100) -> pd.DataFrame:
    """ACDC-shaped clean rows of ``n`` patients (20 per group), Dice drawn around 0.9 per patient."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(n):
        g, base = GROUPS[i % 5], rng.normal(0.9, 0.03)
        for phase in ("ED", "ES"):
            for s in ("LV", "RV", "MYO"):
                rows.append(dict(sample_id=f"patient{i:03d}_{phase}", structure=s, severity="none",
                                 patient_id=f"patient{i:03d}", split="TEST", phase=phase, artifact="clean",
                                 dice=base + rng.normal(0, 0.02) - (shift or {}).get(g, 0.0), group=g))
    return pd.DataFrame(rows)


def test_a_group_that_differs_is_found_and_equal_groups_are_not():
    spec = load_task("acdc_seg")
    same = subgroup_table(_many(), spec, spec.subgroups[0])
    worse = subgroup_table(_many({"MINF": 0.05}), spec, spec.subgroups[0])
    assert [r["level"] for r in same["levels"]] == GROUPS
    assert all(r["low"] <= r["value"] <= r["high"] for r in same["levels"])
    assert worse["p"] < 0.001 < same["p"]
    minf = next(r for r in worse["levels"] if r["level"] == "MINF")
    assert minf["value"] == pytest.approx(next(r for r in same["levels"] if r["level"] == "MINF")["value"] - 0.05)
    assert all(r["n"] == 20 for r in same["levels"])


def test_missing_column_says_so():
    spec = load_task("acdc_seg")
    t = subgroup_table(_acdc().drop(columns="group"), spec, spec.subgroups[0])
    assert t["levels"] == [] and "no 'group' values" in t["note"]


def test_acdc_page_has_the_subgroup_table(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "marker.txt").write_text("a data folder for the fingerprint")
    run = make_run(tmp_path / "runs" / "acdc", "acdc_seg", "acdc_unet", _acdc({"HCM": 0.1}), data, in_process=True)
    site = tmp_path / "site"
    cli("report", str(run.parent), "--out", str(site), check=True)
    page = (site / "acdc_seg.html").read_text()
    assert "<h2>Subgroups</h2>" in page and 'id="subgroup-group-acdc"' in page
    for g in GROUPS:
        assert f"<td>{g}</td>" in page
    assert "Heterogeneity: Q = " in page and "I² = " in page
    rec = json.loads((site / "acdc_seg.json").read_text())[0]
    assert 0 <= rec["group_heterogeneity_p"] <= 1 and rec["dice[group=HCM]"] < rec["dice[group=NOR]"] - 0.05
