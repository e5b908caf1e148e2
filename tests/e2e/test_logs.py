"""The executor's structured logs, read from a real pod's log: one JSON event per line,
the job id on every job line, sizes instead of code or output."""

from __future__ import annotations

import json
import time

from warmfleet.contract.schema import Status


def _events(path: str) -> list[dict]:
    with open(path, errors="replace") as f:
        # runsc writes its own (non-JSON) lines into the same file; ours start with '{'.
        return [json.loads(line) for line in f if line.startswith("{")]


def test_job_lines_carry_job_id_and_sizes_never_code_or_output(fleet, client):
    code_marker, out_marker = "CODE-MARKER-4f1d", "OUTPUT-MARKER-9a2c"
    code = f"import sys\n# {code_marker}\nprint('{out_marker}' * 3)\nprint('{out_marker}', file=sys.stderr)\nsys.exit(1)"
    result = client.run(code)
    assert result.status is Status.ERROR and out_marker in result.stdout
    log_path = fleet.pods[0].log_path
    deadline = time.monotonic() + 10
    while True:
        events = _events(log_path)
        mine = [e for e in events if e.get("job_id") == result.job_id]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # poll with a deadline: the pod writes its log asynchronously
    assert len(mine) == 1
    done = mine[0]
    assert done["event"] == "job done" and done["status"] == "error"
    assert done["code_bytes"] == len(code)
    assert done["stdout_bytes"] == len(result.stdout) and done["stderr_bytes"] == len(result.stderr)
    assert {"ts", "level", "logger", "pid"} <= done.keys()
    with open(log_path, errors="replace") as f:
        text = f.read()
    assert code_marker not in text and out_marker not in text
    job_events = ("job ", "duplicate delivery", "result already stored", "runner died mid-job", "cannot store result")
    for e in events:  # every job event names its job
        if e["event"].startswith(job_events):
            assert "job_id" in e, e
