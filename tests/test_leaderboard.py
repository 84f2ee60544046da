"""External predictions, compare, check, and the leaderboard site opened in headless Chromium."""
from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cardiobench.tasks.echonet import format as echonet_dynamic

from .conftest import ROOT, cli

XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lb_runs")


def _test_split(root: Path) -> pd.DataFrame:
    fl = pd.read_csv(root / "FileList.csv")
    return fl[fl.Split.str.upper() == "TEST"].reset_index(drop=True)


def _predictions(root: Path, out: Path, noise: float, seed: int, shuffle: bool = False) -> Path:
    t = _test_split(root)
    rng = np.random.default_rng(seed)
    pred = t.EF.to_numpy() + rng.normal(0, noise, len(t))
    if shuffle:  # a deliberately broken model: right values, wrong samples
        pred = rng.permutation(pred)
    pd.DataFrame({"sample_id": t.FileName, "EF_pred": pred}).to_csv(out, index=False)
    return out


def _evaluate(root: Path, runs_root: Path, file: Path, name: str) -> Path:
    proc = cli("evaluate", "--task", "echonet_ef", "--predictions", str(file), "--name", name,
               f"data.root={root}", f"runs_root={runs_root}", "report=false", "progress=false", check=True)
    return Path(re.search(r"run folder: (.+)", proc.stdout).group(1).strip())


@pytest.fixture(scope="module")
def external_runs(twin80, runs_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("preds")
    good = _evaluate(twin80, runs_root, _predictions(twin80, tmp / "good.csv", 3, 0), "good-model")
    noisy = _evaluate(twin80, runs_root, _predictions(twin80, tmp / "noisy.csv", 9, 1), XSS)
    return {"good": good, "noisy": noisy, "good_file": tmp / "good.csv", "tmp": tmp}


def test_external_predictions_make_a_run(external_runs, twin80):
    run = external_runs["good"]
    assert run.is_absolute()
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "finished" and m["profile"] == "external" and m["data"]["is_twin"] is False
    pred = pd.read_csv(run / "predictions.csv")
    assert len(pred) == len(_test_split(twin80)) and pred.EF_pred.notna().all()
    metrics = json.loads((run / "metrics.json").read_text())
    assert 1.5 < metrics["mae"]["value"] < 4.5  # noise SD 3 -> MAE about 2.4


def test_bad_predictions_are_refused_naming_rows(twin80, runs_root, tmp_path):
    t = _test_split(twin80)
    df = pd.DataFrame({"sample_id": t.FileName, "EF_pred": t.EF + 1.0})
    df.loc[2, "EF_pred"] = np.nan
    df = pd.concat([df.drop(index=4), df.iloc[[6]]])  # sample 4 missing, sample 6 duplicated
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    proc = cli("evaluate", "--task", "echonet_ef", "--predictions", str(bad), "--name", "bad",
               f"data.root={twin80}", f"runs_root={runs_root}", "report=false", "progress=false")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    err = proc.stderr
    assert str(bad) in err
    assert "NaN" in err and "line(s) 4" in err                       # row 2 is line 4 (header + 0-based)
    assert f"duplicate sample_id {t.FileName[6]}" in err
    assert t.FileName[4] in err and "no prediction" in err
    no_col = tmp_path / "nocol.csv"
    df.rename(columns={"EF_pred": "ef"}).to_csv(no_col, index=False)
    proc = cli("evaluate", "--task", "echonet_ef", "--predictions", str(no_col), "--name", "x",
               f"data.root={twin80}", f"runs_root={runs_root}", "report=false")
    assert proc.returncode == 1 and "missing column(s) EF_pred" in proc.stderr


def test_compare_paired_and_refuses_other_test_sets(external_runs, runs_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "cmp.json"
    proc = cli("compare", str(external_runs["good"]), str(external_runs["noisy"]), "--json", str(out),
               "--n-resamples", "2000", check=True)
    rows = {r["metric"]: r for r in json.loads(out.read_text())["comparisons"]}
    assert rows["mae"]["diff"] < 0 and rows["mae"]["high"] < 0 and rows["mae"]["p_value"] < 0.01
    assert "auc_ef50" in rows and "paired DeLong" in proc.stdout and "95% CI of a - b" in proc.stdout
    proc90 = cli("compare", str(external_runs["good"]), str(external_runs["noisy"]), "--level", "0.9",
                 "--n-resamples", "2000", check=True)
    assert "90% CI of a - b" in proc90.stdout and "95% CI" not in proc90.stdout
    mae90 = next(line.split() for line in proc90.stdout.splitlines() if line.startswith("mae "))
    assert float(mae90[5].strip("],")) - float(mae90[4].strip("[,")) < rows["mae"]["high"] - rows["mae"]["low"]
    other = echonet_dynamic.synthesize(tmp_path_factory.mktemp("other") / "echonet", n=40, seed=99, progress=False)
    elsewhere = _evaluate(other, runs_root, _predictions(other, external_runs["tmp"] / "o.csv", 3, 2), "other")
    proc = cli("compare", str(external_runs["good"]), str(elsewhere))
    assert proc.returncode == 1 and "different test sets" in proc.stderr and "Traceback" not in proc.stderr


def _chromium() -> str:
    """Debian's chromium (`.ci/run` installs it; tests install nothing). Missing: a failure under CI, else a skip."""
    path = shutil.which("chromium")
    if path is None:
        msg = "Debian chromium is needed for the leaderboard browser test (apt-get install chromium; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


HOSTILE = {  # markup in every free-text field of a published number (an include folder's published.yaml)
    "title": "<b onmouseover=alert(2)>title</b>",
    "citation": "Doe J. <img src=x onerror=alert(3)> <svg><script>alert(4)</script></svg>",
    "doi": '10.1/x"><script>alert(5)</script>',
    "source": "<iframe src=//evil.example/>",
    "definition": "MAE </td></tr></table><script>alert(6)</script>",
    "mode": "<style>body{display:none}</style>",
}


def _hostile_baseline(folder: Path) -> Path:
    """An include folder with an echonet_ef baseline and a published.yaml whose texts are all markup."""
    import yaml

    (folder / "baselines").mkdir(parents=True)
    recipe = yaml.safe_load((ROOT / "baselines" / "echonet" / "echonet_dynamic_r2plus1d.yaml").read_text())
    recipe["baseline"] = {"name": "hostile_meta", "task": "echonet_ef", "title": HOSTILE["title"],
                          "citation": {"text": HOSTILE["citation"], "doi": HOSTILE["doi"]}}
    (folder / "baselines" / "hostile_meta.yaml").write_text(yaml.safe_dump(recipe))
    published = {"references": {"hostile": {"citation": HOSTILE["citation"], "doi": HOSTILE["doi"]}},
                 "definitions": {"echonet_ef": {"hostile_mae": HOSTILE["definition"]}},
                 "tasks": {"echonet_ef": [{"method": HOSTILE["title"], "baseline": "hostile_meta", "source": "hostile",
                                           "where": HOSTILE["source"], "split": "TEST", "n": 10, "unit": "videos",
                                           "same_data": True, "kind": "measured", "mode": HOSTILE["mode"],
                                           "numbers": [{"metric": "hostile_mae", "value": 4.2}]}]}}
    (folder / "published.yaml").write_text(yaml.safe_dump(published))
    return folder


class _LoggedHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site and records every path the browser asks for."""
    requested: list[str] = []

    def do_GET(self):
        type(self).requested.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


def _page_requests(netlog: Path, site: str) -> list[str]:
    """URLs of the requests the page made, from Chromium's network log: those keyed to the page's
    site (its network isolation key), not the browser's own background traffic."""
    text = netlog.read_text()
    try:
        log = json.loads(text)
    except ValueError:  # a log whose writer stopped before closing it
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in log["events"] if e["type"] == start and "params" in e
            and e["params"].get("network_isolation_key", "").startswith(site)]


def test_site_in_headless_chromium(external_runs, runs_root, tmp_path, monkeypatch):
    include = _hostile_baseline(tmp_path / "include")
    monkeypatch.setenv("CARDIOBENCH_INCLUDE", os.pathsep.join([os.environ["CARDIOBENCH_INCLUDE"], str(include)]))
    site = tmp_path / "site"
    cli("report", str(runs_root), "--out", str(site), check=True)
    html = (site / "echonet_ef.html").read_text()
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for field, text in HOSTILE.items():
        assert text not in html, f"published {field} inserted as markup"
    assert "Doe J. &lt;img src=x onerror=alert(3)&gt;" in html
    assert 'href="https://doi.org/10.1/x%22%3E%3Cscript%3Ealert%285%29%3C/script%3E"' in html
    # offline and locked: the CSP loads nothing from anywhere and runs only the script whose hash it names
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html).group(1)
    assert "default-src 'none'" in csp and "http" not in csp
    inline = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert not re.search(r"""<(?:img|link|iframe|object|embed|audio|video|source)\b[^>]*\b(?:src|href)=["']?(?:https?:)?//""",
                         html), "the page loads an external resource"
    for name in ("echonet_ef.csv", "echonet_ef.json", "index.html"):
        assert (site / name).is_file()
    records = json.loads((site / "echonet_ef.json").read_text())
    assert {r["baseline"] for r in records} >= {"good-model", XSS}
    assert "<" not in (site / "echonet_ef.json").read_text()  # \u003c: the same value, never markup

    handler = functools.partial(_LoggedHandler, directory=str(site))
    _LoggedHandler.requested = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/echonet_ef.html"
    try:
        chrome = _chromium()
        shot = tmp_path / "leaderboard-echonet_ef.png"
        common = [chrome, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
        subprocess.run([*common, "--window-size=1400,2200", f"--screenshot={shot}", url], capture_output=True,
                       timeout=120, check=True)
        netlog = tmp_path / "netlog.json"  # Chromium's network log: every request the page made
        dom = subprocess.run([*common, f"--log-net-log={netlog}", "--dump-dom", url], capture_output=True,
                             text=True, timeout=120, check=True).stdout
    finally:
        server.shutdown()
    urls = _page_requests(netlog, "http://127.0.0.1")
    assert urls == [url], f"the page made requests besides loading itself: {urls}"
    assert set(_LoggedHandler.requested) == {"/echonet_ef.html"}, _LoggedHandler.requested
    assert shot.is_file() and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    body = dom[dom.index('<table id="runs"'):]
    body = body[:body.index("</table>")]
    assert body.count("<tr") == 1 + len(records)          # header + one row per run
    assert "good-model" in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert dom.count("<script") == 1                      # only our sorting script: the names stayed text
    for tag in ("<img", "<iframe", "<style>body", "<b onmouseover"):
        assert tag not in dom, f"{tag} was injected"
    assert "Doe J. &lt;img src=x onerror=alert(3)&gt;" in dom
    assert 'data-script="ran"' in dom                      # and it ran under the page's CSP (its hash is right)
    assert "Ouyang D" in dom and "doi.org/10.1038/s41586-020-2145-8" in dom  # citations
    assert dom.count("<svg") >= 4 * len(records)            # plots inline
    for title in ("Bland-Altman", "ROC", "Predicted vs true", "Error by range"):
        assert title in dom


def test_downloads_neither_run_nor_lose_hostile_text():
    from cardiobench.report.downloads import csv_cell as _csv_cell
    from cardiobench.report.downloads import json_text as _json_text

    recs = [{"baseline": XSS, "run": "=HYPERLINK(\"http://x\")", "mae": -1.5, "note": "-3.2", "other": "@SUM(A1)"}]
    assert json.loads(_json_text(recs)) == recs and "<" not in _json_text(recs) and "&" not in _json_text(recs)
    assert _csv_cell(recs[0]["run"]) == "'=HYPERLINK(\"http://x\")" and _csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert _csv_cell("-3.2") == "-3.2" and _csv_cell(-1.5) == -1.5 and _csv_cell(XSS) == XSS


def test_figures_keep_markup_and_dollars_as_text():
    """Sample ids and names reach figure titles and tick labels: SVG text escaped, no mathtext."""
    from cardiobench.report import plots
    from cardiobench.tasks.ctrate.figures import organ_label_overlays
    from cardiobench.tasks.echonet.figures import area_curve_plot

    bad = '<img src=x onerror=alert(1)> $\\frac{$ & ]]>'
    svgs = [area_curve_plot([(bad, np.arange(10.0), np.array([1, 5]), np.array([5]))]),
            plots.forest_plot([(bad, {"value": 0.6, "low": 0.5, "high": 0.7})]),
            plots.dice_by_sample({bad: np.array([0.8, 0.9])}, {bad: 0.85}),
            organ_label_overlays([(bad, np.zeros((8, 8)), np.ones((8, 8), int))], [bad])]
    for svg in svgs:
        assert "<img" not in svg and "&lt;img src=x onerror=alert(1)&gt; $\\frac{$ &amp; ]]&gt;" in svg


def test_two_runs_finishing_at_once_both_reach_the_page(external_runs, tmp_path, monkeypatch):
    """Run A's renderer reads the runs, then is held up; run B finishes and renders; A renders last.
    A's page must still show B: the runs are read under the site lock, so B waits for A and reads after."""
    import cardiobench.report as report
    import cardiobench.report.rows as rows
    from cardiobench.runs import Run

    root, site = tmp_path / "runs", tmp_path / "site"
    a, b = root / "a", root / "b"
    shutil.copytree(external_runs["good"], a)
    shutil.copytree(external_runs["noisy"], b)
    Run(b).update_manifest(status="running")
    read, go = threading.Event(), threading.Event()
    real = rows.run_row

    def slow_row(run, spec):
        row = real(run, spec)
        if threading.current_thread().name == "A" and run.path.name == "b":
            read.set()
            go.wait(10)  # A holds what it read (b still running) while b finishes
        return row

    monkeypatch.setattr(report, "run_row", slow_row)  # the name render_site reads
    ta = threading.Thread(target=report.render_site, args=([root], site, False), name="A")
    ta.start()
    assert read.wait(30)
    Run(b).update_manifest(status="finished")
    tb = threading.Thread(target=report.render_site, args=([root], site, False), name="B")
    tb.start()
    tb.join(1.0)  # B blocks on the site lock while A renders (it would race ahead without it)
    go.set()
    ta.join(60)
    tb.join(60)
    records = json.loads((site / "echonet_ef.json").read_text())
    assert sorted(Path(r["run"]).name for r in records) == ["a", "b"]
    assert (site / "echonet_ef.html").read_text().rstrip().endswith("</html>")
