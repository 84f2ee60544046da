from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cardiobench.data import echonet_dynamic

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# Tiny sizes for pipeline tests (determinism, resume): they test plumbing, not learning.
# eval.segmentation_run=null: beat-by-beat must not depend on segmentation runs lying around in runs/.
TINY = ["data.twin.n=24", "clip.frames=8", "clip.period=8", "clip.size=24", "train.epochs=2",
        "train.batch_size=4", "progress=false", "report=false", "eval.segmentation_run=null"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory) -> Path:
    """One cache for the full smoke runs, so they share the 450-video twin."""
    return tmp_path_factory.mktemp("smoke_cache")


@pytest.fixture(scope="session")
def twin(tmp_path_factory) -> Path:
    """A small EchoNet-Dynamic twin shared by read-only tests."""
    out = tmp_path_factory.mktemp("twin") / "echonet"
    return echonet_dynamic.synthesize(out, n=24, seed=3, progress=False)


def cli(*args: str, cache: Path | None = None, check: bool = False, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if cache is not None:
        env["CARDIOBENCH_CACHE"] = str(cache)
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, "-m", "cardiobench", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"cardiobench {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
