"""The pod's Prometheus endpoint, scraped over HTTP from a real supervisor (run as a plain
process: a runsc pod has no network the host could scrape) on a real Redis."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from dispatcher import Client
from support import fleet_faults as ff
from warmfleet.contract import keys
from warmfleet.contract.schema import Status


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted({"pool": "default", **labels}.items()))))


def scrape_until(port: int, check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)  # poll with a deadline: gauges refresh on their own period


def release_all(fleet) -> None:
    """Let every held job go on (support.fleet_faults.held_job): its 'release' file, in
    each slot's workspace of this sandbox-less pod, owned by the slot's uid."""
    from warmfleet.local.pod import SLOT_UID_BASE

    (pod,) = fleet.pods
    for slot in range(fleet.settings.slots):
        path = os.path.join(pod.dir, "ws", str(slot), "release")
        open(path, "w").close()
        os.chown(path, SLOT_UID_BASE + 300 * pod.index + slot, SLOT_UID_BASE + 300 * pod.index + slot)


@pytest.fixture(scope="module")
def plain_fleet():
    from warmfleet.local.fleet import LocalFleet
    from warmfleet.settings import FleetSettings

    port = _free_port()
    mp = pytest.MonkeyPatch()
    # Pods read WARMFLEET_* from the environment the fleet copies into their settings file.
    mp.setenv("WARMFLEET_METRICS_PORT", str(port))
    mp.setenv("WARMFLEET_METRICS_ADDR", "127.0.0.1")
    mp.setenv("WARMFLEET_METRICS_REFRESH_S", "0.2")
    fleet = LocalFleet(FleetSettings(pods=1, slots=2, sandbox=False, drain_timeout_s=10))
    try:
        fleet.start(ready_timeout=30)
        yield fleet, port
    finally:
        fleet.stop()
        mp.undo()


@pytest.mark.timeout(90)
def test_scrape_counts_jobs_by_status_and_exposes_slots_memory_and_stream(plain_fleet):
    fleet, port = plain_fleet
    r = redis.Redis.from_url(fleet.client_url, decode_responses=True)
    with Client(fleet.client_url) as c:
        results = c.map(["print(1)", "print(2)", "import sys; sys.exit(3)", "while True: pass"], timeout=0.5, cpu_time=5)
        assert [x.status for x in results] == [Status.OK, Status.OK, Status.ERROR, Status.TIMEOUT]
        # An entry with a job id but invalid budgets is answered `rejected`; one without is dead-lettered.
        r.xadd(keys.stream("default"), {"job": json.dumps({"job_id": "bad1", "code": "x", "timeout": "5"})})
        r.xadd(keys.stream("default"), {"garbage": "1"})
        assert c.wait("bad1", timeout=10).status is Status.REJECTED

        s = scrape_until(port, lambda s: value(s, "warmfleet_dead_letter_stream_length") == 1)
        assert value(s, "warmfleet_jobs_completed_total", status="ok") == 2
        assert value(s, "warmfleet_jobs_completed_total", status="error") == 1
        assert value(s, "warmfleet_jobs_completed_total", status="timeout") == 1
        assert value(s, "warmfleet_jobs_completed_total", status="rejected") == 1
        assert value(s, "warmfleet_jobs_received_total") == 6
        assert value(s, "warmfleet_dead_letters_total", reason="malformed") == 1
        assert value(s, "warmfleet_dead_letter_stream_length") == 1
        # Histograms: only jobs that ran are observed; the timed-out one ran at least its
        # 0.5 s, so it is in no bucket below that (how fast the others were is the machine's).
        assert value(s, "warmfleet_job_duration_seconds_count") == 4
        assert value(s, "warmfleet_job_duration_seconds_bucket", le="+Inf") == 4
        assert value(s, "warmfleet_job_duration_seconds_bucket", le="0.25") <= 3
        assert value(s, "warmfleet_job_duration_seconds_sum") >= 0.5
        assert value(s, "warmfleet_job_queue_wait_seconds_count") == 4
        assert value(s, "warmfleet_slots") == 2
        assert value(s, "warmfleet_slots_busy") == 0
        assert value(s, "warmfleet_executor_memory_bytes", process="supervisor") > 10 << 20
        assert value(s, "warmfleet_executor_memory_bytes", process="runner") > 2 << 20
        assert value(s, "warmfleet_stream_lag") == 0

        # A backlog: both slots held busy until released, three more waiting -> lag 3, busy 2.
        held = [c.submit(ff.held_job("held"), timeout=60) for _ in range(2)]
        scrape_until(port, lambda s: value(s, "warmfleet_slots_busy") == 2)
        waiting = [c.submit("print(0)") for _ in range(3)]
        s = scrape_until(port, lambda s: value(s, "warmfleet_stream_lag") == 3)
        assert value(s, "warmfleet_stream_lag") == 3
        assert value(s, "warmfleet_slots_busy") == 2
        assert value(s, "warmfleet_stream_pending") == 2
        assert value(s, "warmfleet_stream_oldest_pending_age_seconds") > 0
        assert value(s, "warmfleet_executor_memory_bytes", process="child") > 0
        release_all(fleet)
        finals = [c.wait(j, timeout=20) for j in held + waiting]
        assert all(res.ok for res in finals), finals
    r.close()
