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


def paced_latency(run: Callable[[], object], n: int, pace_s: float, inner: str) -> dict:
    """Call `run` (a trivial "print(1)" that returns a Result) n times from one client:
    end to end as the client sees it, and the Result's own duration under `inner`.
    pace_s > 0 starts one every pace_s seconds (an interactive user); 0: back-to-back."""
    samples, inside, bad = [], [], 0
    next_start = time.perf_counter()
    for _ in range(n):
        if pace_s:
            time.sleep(max(0.0, next_start - time.perf_counter()))  # pacing, not synchronisation
            next_start = time.perf_counter() + pace_s
        t0 = time.perf_counter()
        r = run()
        samples.append(time.perf_counter() - t0)
        inside.append(r.duration_s)  # type: ignore[attr-defined]
        bad += r.status.value != "ok" or r.stdout != "1\n"  # type: ignore[attr-defined]
    return {**summarize_ms(samples), inner: summarize_ms(inside), "wrong": bad}
