"""Helpers for benchmarks that report a ratio against a reference timed in the same process.

``--quick`` (what `.ci/run` uses) times each side fewer times; the asserted ratios are the same.
"""
from __future__ import annotations

import time
import tracemalloc
from typing import Callable

import pytest


def pytest_addoption(parser):
    parser.addoption("--quick", action="store_true", help="fewer repetitions (CI): same assertions, noisier times")


@pytest.fixture(scope="session")
def repeats(request) -> Callable[[int], int]:
    """``repeats(n)``: n timing repetitions, or 1 with --quick."""
    quick = request.config.getoption("--quick")
    return lambda n: 1 if quick else n


@pytest.fixture(scope="session")
def quick(request) -> bool:
    return bool(request.config.getoption("--quick"))


def best_time(fn: Callable[[], object], repeat: int = 3) -> float:
    """Minimum wall time of ``repeat`` calls (the least disturbed one; cf. timeit)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak traced allocation of one call (numpy buffers are traced by tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
