"""The bad-input corpus (issue 17): every case refused clearly or accepted as documented, never a
traceback, never a hang (each case <= 60 s), nothing already there lost."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from cardiobench.tasks.acdc import format as acdc
from cardiobench.tasks.chest_ct import format as ct_echo
from cardiobench.tasks.ctrate import format as ct_rate
from cardiobench.tasks.echonet import format as echonet_dynamic

from .conftest import _WORKDIR
from .corpus.cases import CASES as DATA_CASES
from .corpus.cases import Case
from .corpus.run_cases import RUN_CASES

CASES = DATA_CASES + RUN_CASES  # data formats (cases.py) and run-folder commands (run_cases.py)

TIMEOUT = 60
RESULTS: Counter = Counter()
TWINS = {"echonet_dynamic": (echonet_dynamic, 24), "acdc": (acdc, 12), "ct_echo": (ct_echo, 16), "ct_rate": (ct_rate, 30)}


@pytest.fixture(scope="session")
def clean_twins(tmp_path_factory) -> dict[str, Path]:
    """One small clean twin per format (read-only: each case copies its own)."""
    base = tmp_path_factory.mktemp("corpus_twins")
    return {fmt: mod.synthesize(base / fmt, n=n, seed=5, progress=False) for fmt, (mod, n) in TWINS.items()}


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus_case(case: Case, clean_twins, tmp_path, cache_dir):
    if not case.as_root and os.geteuid() == 0:
        RESULTS["skipped as root"] += 1
        pytest.skip(f"{case.id} cannot be met as root (root reads any file)")
    root = tmp_path / "data"
    source = clean_twins.get(case.fmt, clean_twins["echonet_dynamic"])
    shutil.copytree(source, root, symlinks=True)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    args = [a.replace("{root}", str(root)) for a in case.breaker(root, scratch)]
    before = _tree(root)
    env = dict(os.environ, CARDIOBENCH_CACHE=str(cache_dir))
    env.pop("HYDRA_FULL_ERROR", None)
    try:
        proc = subprocess.run([sys.executable, "-m", "cardiobench", *args], capture_output=True, text=True,
                              env=env, cwd=_WORKDIR[0], timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        RESULTS["hang"] += 1
        pytest.fail(f"{case.id}: no answer within {TIMEOUT} s (cardiobench {' '.join(args)})")
    finally:
        for p in root.rglob("*"):  # let tmp_path be cleaned after the permission case
            if p.is_file() and not p.is_symlink():
                p.chmod(0o644)
    out = proc.stdout + proc.stderr
    if "Traceback" in out:
        RESULTS["traceback"] += 1
    assert "Traceback" not in out, f"{case.id}: traceback\n{out[-3000:]}"
    assert _tree(root) == before, f"{case.id}: the command changed or removed input files"
    if case.expect == "refused":
        assert proc.returncode == case.code, f"{case.id}: exit {proc.returncode}, expected {case.code}\n{out[-3000:]}"
        assert case.mention in proc.stderr + proc.stdout, f"{case.id}: the message does not name {case.mention!r}\n{out[-3000:]}"
        RESULTS["refused"] += 1
    else:
        assert proc.returncode == 0, f"{case.id}: exit {proc.returncode}, expected 0\n{out[-3000:]}"
        assert case.mention in out
        RESULTS["accepted"] += 1


def test_corpus_summary():
    """Runs after the cases (file order): the issue's summary line."""
    if sum(RESULTS.values()) < len(CASES):
        pytest.skip("run with the whole corpus (tests/test_corpus.py) for the summary")
    print(f"\nbad-input corpus: {len(CASES)} cases, {RESULTS['refused']} refused clearly, {RESULTS['accepted']} "
          f"accepted with documented handling, {RESULTS['skipped as root']} not meetable as root, "
          f"{RESULTS['traceback']} tracebacks, {RESULTS['hang']} hangs")
    assert RESULTS["traceback"] == RESULTS["hang"] == 0
    assert RESULTS["refused"] + RESULTS["accepted"] + RESULTS["skipped as root"] == len(CASES)
    assert RESULTS["refused"] + RESULTS["accepted"] + RESULTS["skipped as root"] == len(CASES)
    assert RESULTS["traceback"] == RESULTS["hang"] == 0
