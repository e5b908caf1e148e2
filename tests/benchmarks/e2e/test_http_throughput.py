"""The /run_code throughput harness (benchmarks/http_throughput.py), tiny, on the shared
fleet: the service process starts, answers every request, and the report has its shape."""

from __future__ import annotations

import pytest

from warmfleet.bench.http_throughput import run_code_throughput


@pytest.mark.timeout(120)
def test_run_code_throughput_measures_both_rates_and_the_service(fleet):
    out = run_code_throughput(fleet, 16, clients=8, log=lambda _msg: None)
    assert out["direct"]["ok"] == out["run_code"]["ok"] == 16
    assert out["direct"]["jobs_per_s"] > 0 and out["run_code"]["jobs_per_s"] > 0
    assert out["ratio"] == round(out["run_code"]["jobs_per_s"] / out["direct"]["jobs_per_s"], 2)
    assert 20 < out["service_rss_mb"]["idle"] <= out["service_rss_mb"]["after"] + 5
