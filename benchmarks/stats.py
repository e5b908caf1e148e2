"""Percentiles and timing helpers shared by every measurement."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize_ms(samples_s: list[float]) -> dict:
    """p50/p90/p99/mean in milliseconds from samples in seconds."""
    ms = sorted(s * 1000 for s in samples_s)
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "mean_ms": round(sum(ms) / len(ms), 2),
    }


def time_each(fn: Callable[[], object], n: int) -> tuple[list[float], list[object]]:
    """Call fn n times in a row; return the durations in seconds and the results."""
    durations, results = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        results.append(fn())
        durations.append(time.perf_counter() - t0)
    return durations, results
