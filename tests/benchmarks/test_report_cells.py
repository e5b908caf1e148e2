"""The cells part of `warmfleet bench` renders its figures and judges the issue's targets,
from a recorded quick run's JSON (with a baseline checkout; tests/e2e/test_cells.py runs
the paths for real)."""

from __future__ import annotations

import copy
import json
import os

from warmfleet.bench import report, report_cells

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cells_sample.json")


def _report() -> dict:
    with open(SAMPLE) as f:
        return {"cells": json.load(f)}


def _targets(r: dict) -> dict:
    return {t["target"]: t for t in report.targets(r) if t["target"].startswith("cells:")}


def test_details_name_every_figure():
    text = report_cells.details(_report())
    for part in ("this checkout", "baseline", "paced p50", "jobs/s", "idle lean session", "dataframe", "chart"):
        assert part in text, part
    assert report_cells.details({}) == ""


def test_targets_are_judged_from_the_numbers():
    r = _report()
    ce = r["cells"]
    ce["lean"]["print1_paced"]["p50_ms"], ce["lean_baseline"]["print1_paced"]["p50_ms"] = 5.0, 5.1
    ce["lean"]["print1_throughput"]["jobs_per_s"], ce["lean_baseline"]["print1_throughput"]["jobs_per_s"] = 40.0, 39.0
    ce["lean"]["idle_session_mb"], ce["lean_baseline"]["idle_session_mb"] = 10.5, 10.0
    ce["data_science"]["dataframe"]["delta_p50_ms"] = 4.0
    ce["data_science"]["chart"]["delta_p50_ms"] = -1.0
    got = _targets(r)
    assert len(got) == 5 and all(t["holds"] for t in got.values()), got

    worse = copy.deepcopy(r)
    worse["cells"]["lean"]["print1_paced"]["p50_ms"] = 6.0
    worse["cells"]["lean"]["idle_session_mb"] = 11.5
    worse["cells"]["data_science"]["dataframe"]["delta_p50_ms"] = 5.5
    got = _targets(worse)
    assert [t["holds"] for name, t in got.items() if "p50 no worse" in name] == [False]
    assert [t["holds"] for name, t in got.items() if "idle lean session" in name] == [False]
    assert [t["holds"] for name, t in got.items() if "DataFrame" in name] == [False]


def test_without_a_baseline_only_the_data_science_targets_are_judged():
    r = _report()
    r["cells"]["lean_baseline"] = {"skipped": "warmfleet bench --baseline CHECKOUT"}
    assert len(_targets(r)) == 2
    assert "--baseline CHECKOUT" in report_cells.details(r)
