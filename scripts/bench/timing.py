"""Timing shared by the benchmark scripts (imported as a sibling module: the scripts run from this folder)."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def median_seconds(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after one warm-up, waiting for CUDA work to finish."""

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
