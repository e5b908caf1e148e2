"""The egress part of `warmfleet bench` renders its figures, from a recorded quick run's
JSON (tests/e2e/sessions/test_session_egress.py runs the paths for real)."""

from __future__ import annotations

import json
import os

from warmfleet.bench import report, report_egress

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "egress_sample.json")


def test_details_name_every_figure():
    with open(SAMPLE) as f:
        r = {"egress": json.load(f)}
    text = report_egress.details(r)
    sg = r["egress"]["session_get"]
    for part in ("in a session p50", f"{sg['in_call']['p50_ms']:.2f} ms inside the call", "in a job p50",
                 "connects nowhere", "20 MB download"):
        assert part in text, part
    assert report_egress.details({}) == ""
    assert "Egress through the pool's proxy" in report.render({**r, "date": "d", "profile": "quick", "machine": {
        "cpus": 2, "cpu_model": "x", "memory_gb": 1, "os": "o", "kernel": "k", "python": "3", "redis": "7",
        "load_avg_at_start": [0, 0, 0]}})
