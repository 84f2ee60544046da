"""The same bytes on every x86 machine: CPU math kernels pinned to one instruction set.

torch picks its CPU kernels (ATen's vectorised loops, oneDNN convolutions, MKL BLAS) by the widest
instruction set the processor has, and AVX-512 kernels add in another order than AVX2 ones. A smoke
run trained on an AVX-512 machine therefore ends with other weights than the same run on an AVX2
machine (measured: EchoNet EF smoke MAE 6.339 vs 6.248, seed 0, same twin), which would make the
stored CI references unreproducible. Pinning them to AVX2, which every x86-64 machine of the last
decade has, and MKL to its reproducible AVX2 branch (MKL otherwise picks its code by vendor: a chest-CT
smoke gave MAE 6.536 on AMD and 6.342 on Intel), gives identical runs on all of them. The variables are read when torch loads its
libraries, so this runs when ``cardiobench`` is imported, before torch; a value the user set wins.
``CARDIOBENCH_CPU_ISA=native`` turns it off (torch picks, as usual).
"""
from __future__ import annotations

import os
import platform
from contextlib import contextmanager
from typing import Iterator

# MKL_CBWR: MKL's conditional numerical reproducibility, the same results on every processor that runs
# its AVX2 branch, Intel or AMD (MKL_ENABLE_INSTRUCTIONS alone caps the instruction set, not the path).
ISA_VARIABLES = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                 "MKL_CBWR": "AVX2,STRICT"}


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            return any(line.startswith("flags") and " avx2" in line for line in fh)
    except OSError:
        return False


def pin_cpu_kernels() -> dict[str, str]:
    """Set the ISA variables (unless already set) on x86-64 with AVX2; returns what was set."""
    if os.environ.get("CARDIOBENCH_CPU_ISA", "avx2").lower() == "native":
        return {}
    if platform.machine().lower() not in ("x86_64", "amd64") or not _has_avx2():
        return {}
    done = {}
    for key, value in ISA_VARIABLES.items():
        if key not in os.environ:
            os.environ[key] = done[key] = value
    return done


@contextmanager
def ipp_off() -> Iterator[None]:
    """OpenCV without Intel IPP in this thread (IPP's switch is per thread), restored after.

    IPP chooses its own kernels by processor and they round differently (cv2.resize of float32 with
    INTER_LINEAR: its SSE4.2 and AVX2 paths give other bits); OpenCV's own kernels gave the same bits
    with and without AVX2, so preprocessing that feeds a cache or a twin runs without IPP."""
    import cv2

    was = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    try:
        yield
    finally:
        cv2.ipp.setUseIPP(was)
