"""`warmfleet run --batch` against the real fleet: results as JSON lines, invalid lines
reported, Ctrl-C stops submitting and reports how many finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from warmfleet.cli import status as fleet_status


def _batch(fleet, jobs_path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "warmfleet.cli.main", "run", "--batch", str(jobs_path), "--redis-url", fleet.client_url, *extra]


def test_batch_writes_one_result_line_per_job(fleet, tmp_path):
    jobs = [{"id": f"sq-{i}", "code": f"print({i} * {i})"} for i in range(30)]
    jobs.append({"id": "boom", "code": "raise SystemExit(4)"})
    jobs.append({"id": "slowpoke", "code": "import time; time.sleep(5)", "timeout": 0.3})
    lines = [json.dumps(j) for j in jobs] + ["", "not json", json.dumps({"code": "print(1)", "timeout": -1})]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "results.jsonl"
    proc = subprocess.run(_batch(fleet, path, "-o", str(out), "--concurrency", "8"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr  # some jobs were not ok
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 34
    by_id = {r["id"]: r for r in records if "id" in r}
    assert all(by_id[f"sq-{i}"]["stdout"] == f"{i * i}\n" and by_id[f"sq-{i}"]["status"] == "ok" for i in range(30))
    assert (by_id["boom"]["status"], by_id["boom"]["exit_code"]) == ("error", 4)
    assert by_id["slowpoke"]["status"] == "timeout"
    invalid = sorted((r["line"], r["status"]) for r in records if r["status"] == "invalid")
    assert invalid == [(34, "invalid"), (35, "invalid")]  # "not json" and the negative timeout
    assert "32 of 34 jobs finished (error 1, ok 30, timeout 1); 2 invalid lines" in proc.stderr


def test_batch_all_ok_exits_zero_with_results_on_stdout(fleet, tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps({"code": f"print({i})"}) + "\n" for i in range(5)))
    proc = subprocess.run(_batch(fleet, path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(r["stdout"] for r in records) == [f"{i}\n" for i in range(5)]
    assert sorted(r["line"] for r in records) == [1, 2, 3, 4, 5]


@pytest.mark.timeout(60)
def test_ctrl_c_stops_submitting_finishes_in_flight_and_says_how_many(fleet, tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps({"id": i, "code": "import time; time.sleep(0.2)"}) + "\n" for i in range(200)))
    out = tmp_path / "results.jsonl"
    proc = subprocess.Popen(
        _batch(fleet, path, "-o", str(out), "--concurrency", "4"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
            time.sleep(0.02)  # poll with a deadline for the first results
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert 3 <= len(records) < 200
    assert {r["status"] for r in records} == {"ok"}
    assert f"interrupted: {len(records)} of 200 jobs finished (ok {len(records)})" in stderr
    assert "not submitted" in stderr and "abandoned" not in stderr and "Traceback" not in stderr
    # Jobs in flight were waited for and nothing more was enqueued: the fleet is idle.
    r = redis.Redis.from_url(fleet.client_url, decode_responses=True)
    st = fleet_status.read_status(r, "default")
    assert (st.lag, st.pending) == (0, 0)
    r.close()
