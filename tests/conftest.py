from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cardiobench.tasks.echonet import format as echonet_dynamic

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
# The toy out-of-tree task (tests/plugins/echo_lowef) is on the include path for the whole session,
# before collection, so that every per-task test (test_conformance.py) covers it too.
PLUGINS = Path(__file__).resolve().parent / "plugins" / "echo_lowef"
os.environ["CARDIOBENCH_INCLUDE"] = os.pathsep.join(
    p for p in (os.environ.get("CARDIOBENCH_INCLUDE", ""), str(PLUGINS)) if p)

# Paths under the checkout that tests may create: build and tool output, never data or runs.
_TOOL_OUTPUT = (".venv/", ".pytest_cache/", ".benchmarks/", "cardiobench.egg-info/")


def _untracked_state() -> set[str]:
    """Untracked and ignored paths of the checkout (git's view), minus build and tool output."""
    out = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    paths = {line[3:] for line in out.splitlines() if line[:2] in ("??", "!!")}
    allowed = [*_TOOL_OUTPUT]
    if os.environ.get("CARDIOBENCH_SMOKE_DIR"):  # .ci/run keeps the smoke runs it gates
        smoke = Path(os.environ["CARDIOBENCH_SMOKE_DIR"]).resolve()
        if smoke.is_relative_to(ROOT):
            allowed.append(f"{smoke.relative_to(ROOT)}/")
    return {p for p in paths if "__pycache__/" not in p and not p.startswith(tuple(allowed))}


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    """The working directory of every CLI call: a relative ``runs/`` lands here, not in the checkout."""
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="session", autouse=True)
def hermetic(tmp_path_factory, workdir):
    """Tests read and write only their own folders: no user cache, nothing new in the checkout."""
    before = _untracked_state() if (ROOT / ".git").exists() else None
    old = os.environ.get("CARDIOBENCH_CACHE")
    os.environ["CARDIOBENCH_CACHE"] = str(tmp_path_factory.mktemp("default_cache"))
    yield
    if old is None:
        os.environ.pop("CARDIOBENCH_CACHE", None)
    else:
        os.environ["CARDIOBENCH_CACHE"] = old
    if before is not None:
        new = sorted(_untracked_state() - before)
        assert not new, f"the tests wrote into the checkout: {', '.join(new[:10])}"


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


@pytest.fixture(scope="session")
def twin80(tmp_path_factory) -> Path:
    """An 80-video EchoNet-Dynamic twin for scoring tests (read-only: tests copy it to change it)."""
    return echonet_dynamic.synthesize(tmp_path_factory.mktemp("twin80") / "echonet", n=80, seed=11, progress=False)


_WORKDIR: list[Path] = []


@pytest.fixture(scope="session", autouse=True)
def _remember_workdir(workdir):
    _WORKDIR.append(workdir)
    yield
    _WORKDIR.clear()


def cli(*args: str, cache: Path | None = None, check: bool = False, timeout: int = 900) -> subprocess.CompletedProcess:
    """``python -m cardiobench ARGS`` in the session's working directory (never the checkout)."""
    env = dict(os.environ)
    if cache is not None:
        env["CARDIOBENCH_CACHE"] = str(cache)
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, "-m", "cardiobench", *args], capture_output=True, text=True, env=env,
                          cwd=_WORKDIR[0], timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"cardiobench {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def free_port() -> int:
    """A free TCP port on 127.0.0.1, for a test's own gloo process group."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
