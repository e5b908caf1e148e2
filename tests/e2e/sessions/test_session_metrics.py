"""Sessions in the pod's Prometheus metrics and in `warmfleet status`, from a real
runsc pod (scraped from inside the sandbox: its network is `none`)."""

from __future__ import annotations

import subprocess
import time

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from warmfleet.cli import status as fleet_status

SCRAPE = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=5).read().decode())"


def _scrape(fleet) -> dict:
    pod = fleet.pods[0]
    out = subprocess.run(
        [fleet.runsc, "--root", fleet.runsc_root, "exec", pod.pod_id, "/usr/bin/python3", "-c", SCRAPE],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "pool"))): s.value
            for f in text_string_to_metric_families(out.stdout) for s in f.samples}


@pytest.mark.timeout(90)
def test_sessions_open_idle_and_ended_by_reason(sfleet, sclient):
    with sclient.session() as s:
        s.run("x = 1")
        r = redis.Redis.from_url(sfleet.client_url, decode_responses=True)
        deadline = time.monotonic() + 15
        while fleet_status.read_status(r, "default").sessions_open < 1 and time.monotonic() < deadline:
            time.sleep(0.1)  # poll with a deadline: the heartbeat publishes it
        st = fleet_status.read_status(r, "default")
        assert (st.sessions_open, st.sessions_capacity) == (1, 4) and st.sessions_idle == 1
        m = _scrape(sfleet)
        assert m[("warmfleet_sessions_open", ())] == 1 and m[("warmfleet_sessions_capacity", ())] == 4
        assert m[("warmfleet_session_calls_total", (("status", "ok"),))] >= 1
    m = _scrape(sfleet)
    assert m[("warmfleet_sessions_open", ())] == 0
    assert m[("warmfleet_sessions_ended_total", (("reason", "closed"),))] >= 1
    deadline = time.monotonic() + 15
    while not fleet_status.read_status(r, "default").sessions_ended.get("closed") and time.monotonic() < deadline:
        time.sleep(0.1)  # poll with a deadline
    assert fleet_status.read_status(r, "default").sessions_ended["closed"] >= 1
    r.close()
