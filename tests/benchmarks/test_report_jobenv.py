"""The job-environment part of `warmfleet bench` renders every way of running jobs (a)
and (b) and judges the issue's targets, from a recorded smoke run's JSON (the part
itself takes minutes even tiny; tests/e2e/test_job_env.py runs its paths for real)."""

from __future__ import annotations

import json
import os

from warmfleet.bench import report, report_jobenv
from warmfleet.bench.jobenv import A_OUT, B_OUT, JOB_A, JOB_B_ALT, REQUIREMENTS

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jobenv_sample.json")


def _report() -> dict:
    with open(SAMPLE) as f:
        return {"jobenv": json.load(f)}


def test_table_has_every_way_and_both_jobs():
    text = report_jobenv.table(_report())
    for way in ("env preloaded", "no preload", "fresh `python -I -c`", "cold sandbox", "Celery"):
        assert way in text, way
    assert "host PSS" in text and "wrong outputs" in text


def test_targets_are_judged_from_the_numbers():
    r = _report()
    got = {t["target"]: t for t in report.targets(r) if t["target"].startswith("job (a)")}
    assert len(got) == 4
    a = r["jobenv"]["warmfleet_preload"]["a"]
    p50 = got["job (a) p50 <= 25 ms paced, env preloaded"]
    assert p50["measured"] == a["p50_ms"] and p50["holds"] == (a["p50_ms"] <= 25)
    ratio = got["job (a) throughput >= 1.5x Celery + subprocess"]
    assert ratio["measured"] == round(a["jobs_per_s"] / r["jobenv"]["celery"]["a"]["jobs_per_s"], 2)
    assert report_jobenv.table({}) == "" and not [t for t in report.targets({}) if t["holds"]]


def test_the_alternatives_jobs_give_the_expected_output_on_the_env():
    """Jobs (a) and (b) as the alternatives run them, on the example env (scripts/setup)."""
    import subprocess

    from warmfleet.local.jobenv import ensure_env
    from warmfleet.settings import FleetSettings

    env = ensure_env(REQUIREMENTS, FleetSettings().env_cache)
    for code, expected in ((JOB_A, A_OUT), (JOB_B_ALT, B_OUT)):
        out = subprocess.run([env.python, "-I", "-c", code], capture_output=True, text=True, timeout=120)
        assert out.stdout == expected, out.stderr
