"""A tiny run of each gated baseline gives the same predictions, byte for byte, with numpy's AVX-512
kernels on and off: twin, cache and training together do not depend on the SIMD path (the stored CI
references then hold on AVX2 and AVX-512 machines alike). About 40 s a baseline, hence slow; the twins
alone are compared in tests/test_same_bytes.py by default."""
from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import cli
from .test_same_bytes import AVX512_OFF, _has_avx512

GATED = [("echonet_seg", "echonet_dynamic_deeplabv3"), ("echonet_ef", "echonet_dynamic_r2plus1d"),
         ("acdc_seg", "acdc_unet"), ("ct_cardiac", "ct_i3resnet"), ("ct_cardiac", "ct_medvae_latent"),
         ("ctrate_zeroshot", "fvlm_24"), ("ctrate_zeroshot", "ctclip_global")]


def _tiny_run(task: str, baseline: str, out: Path, env: dict[str, str]) -> bytes:
    import os

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        cli("run", "--task", task, "--baseline", baseline, "--profile", "tiny", "--run-dir", str(out / "run"),
            "progress=false", "report=false", f"runs_root={out / 'runs'}", cache=out / "cache", check=True)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return (out / "run" / "predictions.csv").read_bytes()


@pytest.mark.slow
@pytest.mark.skipif(not _has_avx512(), reason="this CPU has no AVX-512: numpy runs the same kernels either way")
@pytest.mark.parametrize("task,baseline", GATED, ids=[b for _, b in GATED])
def test_tiny_run_same_predictions_with_and_without_avx512(task, baseline, tmp_path):
    on = _tiny_run(task, baseline, tmp_path / "on", {})
    off = _tiny_run(task, baseline, tmp_path / "off", AVX512_OFF)
    assert on == off
