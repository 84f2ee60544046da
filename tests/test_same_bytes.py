"""Same seed, same data, same bytes on any x86-64 machine: the twins do not depend on which SIMD
kernels numpy dispatches, and the data fingerprint names decoded content, not file sizes."""
from __future__ import annotations

import ast
import filecmp
import gzip
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cardiobench.data.fingerprint import fingerprint
from cardiobench.data.twins import portable_math as pm

TWINS_DIR = Path(__file__).resolve().parents[1] / "cardiobench" / "data" / "twins"
# numpy's AVX-512 kernels off: what an AVX2-only machine runs
AVX512_OFF = {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}
SIZES = {"echonet_dynamic": 6, "acdc": 6, "ct_echo": 4, "ct_rate": 8}


def _has_avx512() -> bool:
    try:
        return " avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


# ------------------------------------------------------------------ portable math against numpy
@pytest.mark.parametrize("name", ["exp", "log", "power", "arctan", "arctan2"])
def test_portable_math_agrees_with_numpy(name):
    rng = np.random.default_rng(0)
    x = rng.uniform(-30, 30, 200_000)
    y = rng.standard_normal(200_000) * np.exp(rng.uniform(-8, 8, 200_000))
    pos = np.exp(rng.uniform(-300, 300, 200_000))
    base = rng.uniform(0, 2, x.size)
    got, want = {
        "exp": lambda: (pm.exp(x), np.exp(x)),
        "log": lambda: (pm.log(pos), np.log(pos)),
        "power": lambda: (pm.power(base, x / 10), np.power(base, x / 10)),
        "arctan": lambda: (pm.arctan(y), np.arctan(y)),
        "arctan2": lambda: (pm.arctan2(y, x), np.arctan2(y, x)),
    }[name]()
    scale = np.maximum(np.abs(want), 1.0) if name in ("log", "arctan", "arctan2") else np.abs(want)
    if name == "power":  # exp(p log b): the rounding of p log b is magnified by its size
        scale = scale * (1 + np.abs(x / 10 * np.log(np.where(base > 0, base, 1))))
    assert np.all(np.abs(got - want) <= 4 * np.finfo(float).eps * scale)


def test_portable_math_edges():
    assert np.array_equal(pm.exp([-np.inf, 0.0, np.inf, 1e4, -1e4]), [0.0, 1.0, np.inf, np.inf, 0.0])
    assert np.isnan(pm.exp(np.nan)) and np.isnan(pm.log(-1.0)) and pm.log(0.0) == -np.inf
    assert np.array_equal(pm.power([0.0, 0.0, 4.0], [2.0, 0.0, 0.5]), [0.0, 1.0, 2.0])
    assert np.allclose(pm.arctan2([0, 1, -1, 0, 1], [-1, 0, 0, 0, -1]), np.arctan2([0, 1, -1, 0, 1], [-1, 0, 0, 0, -1]))
    assert np.allclose(pm.wrap_angle([3 * np.pi / 2, -3 * np.pi / 2, 0.3]), [-np.pi / 2, np.pi / 2, 0.3])
    assert pm.dot([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == 32.0 and pm.norm([3.0, 4.0, 0.0]) == 5.0


# numpy functions whose float results came out different with AVX-512 on and off (numpy 2.4), and the
# BLAS calls whose kernels OpenBLAS picks by processor model. sin, cos, sqrt, hypot gave equal bits.
CPU_DEPENDENT = {"exp", "log", "log2", "log10", "log1p", "expm1", "exp2", "power", "float_power", "arctan",
                 "arctan2", "tan", "arcsin", "arccos", "sinh", "cosh", "cbrt", "angle", "dot", "matmul",
                 "einsum", "inner", "vdot", "tensordot"}


# ``x ** e`` on an array is np.power unless e is one of these (numpy computes them exactly: square,
# sqrt, reciprocal); ``arr ** 3`` differed with AVX-512 on and off. Scalars go through math.pow instead.
EXACT_EXPONENTS = {2, 0.5, 1, 0, -1}


def _is_constant(node: ast.AST, allowed: set | None = None) -> bool:
    return isinstance(node, ast.Constant) and (allowed is None or node.value in allowed)


def _numpy_calls(path: Path) -> list[str]:
    """``np.<name>(`` and ``np.linalg.<name>(`` calls of CPU-dependent functions, ``@``, and ``**`` with
    an exponent numpy does not compute exactly, in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            found.append(f"{path.name}:{node.lineno} @")
        if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and not _is_constant(node.right, EXACT_EXPONENTS)
                and not (_is_constant(node.left) and _is_constant(node.right))):
            found.append(f"{path.name}:{node.lineno} ** {ast.unparse(node.right)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = ast.unparse(node.func.value)
            if (base == "np" and node.func.attr in CPU_DEPENDENT) or base == "np.linalg":
                found.append(f"{path.name}:{node.lineno} {base}.{node.func.attr}")
    return found


def test_twin_generators_use_only_portable_math():
    """The twin modules call none of numpy's CPU-dependent kernels (portable_math has replacements);
    this holds on any machine, also one without AVX-512 where the test below cannot compare."""
    offenders = [c for p in sorted(TWINS_DIR.glob("*.py")) if p.name != "portable_math.py" for c in _numpy_calls(p)]
    assert offenders == []


# ------------------------------------------------------------------ the twins, AVX-512 on and off
def _synth(fmt: str, out: Path, env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "cardiobench", "data", "synth", fmt, "--n", str(SIZES[fmt]), "--seed", "0",
           "--out", str(out), "--workers", "1"]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **env}, timeout=600)


def _same_tree(a: Path, b: Path) -> list[str]:
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    return [f for f in files if not filecmp.cmp(a / f, b / f, shallow=False)]


@pytest.mark.skipif(not _has_avx512(), reason="this CPU has no AVX-512: numpy runs the same kernels either way "
                    "(test_twin_generators_use_only_portable_math still holds)")
@pytest.mark.parametrize("fmt", sorted(SIZES))
def test_twin_bytes_with_and_without_avx512(fmt, tmp_path):
    _synth(fmt, tmp_path / "on", {})
    _synth(fmt, tmp_path / "off", AVX512_OFF)
    assert _same_tree(tmp_path / "on", tmp_path / "off") == []
    assert fingerprint(tmp_path / "on") == fingerprint(tmp_path / "off")


# ------------------------------------------------------------------ the content fingerprint
def _volume(path: Path, data: np.ndarray, compress_level: int | None = None) -> None:
    img = nib.Nifti1Image(data, np.diag([1.5, 1.5, 8.0, 1.0]))
    if compress_level is None:
        nib.save(img, str(path))
    else:  # the same stream, another gzip level and header (name, mtime)
        raw = path.with_suffix("")
        nib.save(img, str(raw))
        with open(raw, "rb") as src, gzip.GzipFile(str(path), "wb", compresslevel=compress_level, mtime=12345) as dst:
            dst.write(src.read())
        raw.unlink()


def test_fingerprint_names_content_not_compression(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    for name, level in (("a", None), ("b", 1)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "labels.csv").write_text("id,lvef\nx,55.0\n")
        _volume(tmp_path / name / "x.nii.gz", data, level)
    assert (tmp_path / "a" / "x.nii.gz").read_bytes() != (tmp_path / "b" / "x.nii.gz").read_bytes()
    assert fingerprint(tmp_path / "a") == fingerprint(tmp_path / "b")

    changed = data.copy()
    changed[1, 2, 3] += 1  # one voxel: same compressed size class, other content
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "labels.csv").write_text("id,lvef\nx,55.0\n")
    _volume(tmp_path / "c" / "x.nii.gz", changed)
    assert fingerprint(tmp_path / "c") != fingerprint(tmp_path / "a")

    (tmp_path / "a" / "labels.csv").write_text("id,lvef\nx,56.0\n")  # one label, same size
    assert fingerprint(tmp_path / "a") != fingerprint(tmp_path / "b")


def test_fingerprint_of_an_uncompressed_volume_sees_its_voxels(tmp_path):
    """A .nii's size never changes with its content: the old size-based fingerprint missed this."""
    data = np.zeros((4, 4, 4), np.float32)
    _volume(tmp_path / "v.nii", data)
    before = fingerprint(tmp_path)
    data[0, 0, 0] = 1.0
    _volume(tmp_path / "v.nii", data)
    assert fingerprint(tmp_path) != before


def test_fingerprint_memo_is_reused_and_invalidated(tmp_path):
    root, cache = tmp_path / "data", tmp_path / "cache"
    root.mkdir()
    _volume(root / "v.nii.gz", np.ones((3, 3, 3), np.int16))
    first = fingerprint(root, cache_dir=cache)
    memo = next((cache / "fingerprints").glob("*.json"))
    assert fingerprint(root, cache_dir=cache) == first
    _volume(root / "v.nii.gz", np.full((3, 3, 3), 2, np.int16))  # new mtime and content
    assert fingerprint(root, cache_dir=cache) != first
    memo.write_text("{not json")  # a damaged memo is recomputed, never trusted
    assert fingerprint(root, cache_dir=cache) == fingerprint(root)
