"""The sessions part of `warmfleet bench` renders its figures and judges the issue's
targets, from a recorded quick run's JSON (tests/e2e/sessions runs the paths for real)."""

from __future__ import annotations

import copy
import json
import os

from warmfleet.bench import report, report_sessions

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sessions_sample.json")


def _report() -> dict:
    with open(SAMPLE) as f:
        return {"sessions": json.load(f)}


def test_details_name_every_figure():
    text = report_sessions.details(_report())
    for part in ("paced", "back-to-back", "open + one call + close", "32 idle sessions", "MB each", "jobs/s"):
        assert part in text, part
    assert report_sessions.details({}) == ""


def test_targets_are_judged_from_the_numbers():
    r = _report()
    got = {t["target"]: t for t in report.targets(r) if t["target"].startswith("session:")}
    assert len(got) == 3
    fast = copy.deepcopy(r)
    fast["sessions"]["latency_paced"]["p50_ms"] = 2.5
    fast["sessions"]["idle"]["per_session_mb"] = 12.0
    fast["sessions"]["throughput"]["ratio"] = 0.5
    judged = {t["target"].split(" ")[1]: t["holds"] for t in report.targets(fast) if t["target"].startswith("session:")}
    assert judged == {"trivial": True, "an": False, "32": False}
