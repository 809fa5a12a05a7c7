"""Timing primitives shared by the speed measurements."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch


def time_calls(call: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``call()`` over ``repeats`` runs, after ``warmup`` untimed runs."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
