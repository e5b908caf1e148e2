"""`warmfleet status` on a real Redis: pods from heartbeats, backlog from the stream.

Pod heartbeats are written here the way executors write them (executor/store.py), so
every number in the table is known in advance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from warmfleet.contract import keys
from warmfleet.cli import status as fleet_status

POOL = "default"


def _pod(r: redis.Redis, pod_id: str, *, slots: int, ready: int, busy: int, draining: bool = False) -> None:
    snap = {"pod_id": pod_id, "slots": slots, "ready": ready, "busy": busy, "draining": draining,
            "jobs_done": 7, "sandbox": True, "sandbox_runtime": "runsc", "sandbox_version": "0.0~20240729.0",
            "sandbox_platform": "ptrace", "heartbeat": time.time()}
    r.set(keys.pod(POOL, pod_id), json.dumps(snap), ex=60)
    r.zadd(keys.pods(POOL), {pod_id: time.time()})


@pytest.fixture
def busy_pool(redis_url):
    """2 live pods (one draining), 1 stale pod; 5 entries: 2 pending (one 1.5 s old), 3 undelivered; 1 dead letter."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    _pod(r, "pod-a", slots=2, ready=1, busy=1)
    _pod(r, "pod-b", slots=2, ready=0, busy=1, draining=True)
    r.zadd(keys.pods(POOL), {"pod-gone": time.time() - 100})  # its snapshot's TTL lapsed
    stream = keys.stream(POOL)
    r.xgroup_create(stream, keys.CONSUMER_GROUP, id="0", mkstream=True)
    old_ms = int((time.time() - 1.5) * 1000)
    r.xadd(stream, {"job": "{}"}, id=f"{old_ms}-0")
    r.xadd(stream, {"job": "{}"})
    r.xreadgroup(keys.CONSUMER_GROUP, "pod-a/0", {stream: ">"}, count=2)
    for _ in range(3):
        r.xadd(stream, {"job": "{}"})
    r.xadd(keys.dead_letters(POOL), {"reason": "no job id"})
    yield r
    r.close()


def test_read_status_counts_pods_slots_backlog_and_dead_letters(busy_pool):
    st = fleet_status.read_status(busy_pool, POOL)
    assert sorted(p.pod_id for p in st.pods) == ["pod-a", "pod-b"]
    assert (st.slots, st.ready, st.busy) == (2, 1, 2)  # a draining pod's slots take no new work
    assert (st.stream_length, st.lag, st.pending, st.dead_letters) == (5, 3, 2, 1)
    assert 1.4 < st.oldest_pending_s < 10


def test_table_shows_every_figure(busy_pool):
    table = fleet_status.format_table(fleet_status.read_status(busy_pool, POOL))
    assert "2 pods, 2 slots, 1 ready, 2 busy" in table
    assert "lag 3, pending 2, dead letters 1, oldest pending 1." in table
    rows = {line.split()[0]: line.split() for line in table.splitlines()[3:]}
    assert rows["pod-a"][1:] == ["2", "1", "1", "7", "serving", "gvisor", "(runsc", "0.0~20240729.0,", "ptrace)"]
    assert rows["pod-b"][5] == "draining"


def test_empty_pool_reads_as_zeroes(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    st = fleet_status.read_status(r, POOL)
    assert (len(st.pods), st.slots, st.pending, st.dead_letters, st.oldest_pending_s) == (0, 0, 0, 0, None)
    assert "0 pods" in fleet_status.format_table(st)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "warmfleet.cli.main", "status", *args]


def test_cli_json_is_one_parseable_object(busy_pool, redis_url):
    out = subprocess.run(_cli("--redis-url", redis_url, "--json"), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert (data["busy"], data["lag"], data["pending"], data["dead_letters"]) == (2, 3, 2, 1)
    assert data["oldest_pending_s"] > 1.4


def test_cli_watch_refreshes_until_ctrl_c(busy_pool, redis_url):
    proc = subprocess.Popen(
        _cli("--redis-url", redis_url, "--json", "--watch", "--interval", "0.1"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = json.loads(proc.stdout.readline())
        busy_pool.xadd(keys.stream(POOL), {"job": "{}"})  # the next refresh must see it
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = json.loads(proc.stdout.readline())
            if line["lag"] == first["lag"] + 1:
                break
        else:
            pytest.fail("--watch never showed the new entry")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_cli_unreachable_redis_says_so(tmp_path):
    url = f"unix://{tmp_path}/nothing.sock"
    out = subprocess.run(_cli("--redis-url", url), capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "cannot reach" in out.stderr


def test_sessions_are_counted_and_shown(redis_url):
    """Open, idle, capacity (draining pods offer none), waiting opens, ended by reason."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    for pod_id, draining, ended in (("pod-s1", False, {"closed": 2, "idle_timeout": 1}), ("pod-s2", True, {"lost": 1})):
        snap = {"pod_id": pod_id, "slots": 1, "ready": 1, "draining": draining, "sessions_capacity": 4,
                "sessions_open": 2, "sessions_idle": 1, "sessions_ended": ended, "heartbeat": time.time()}
        r.set(keys.pod(POOL, pod_id), json.dumps(snap), ex=60)
        r.zadd(keys.pods(POOL), {pod_id: time.time()})
    r.xgroup_create(keys.session_opens(POOL), keys.CONSUMER_GROUP, id="0", mkstream=True)
    r.xadd(keys.session_opens(POOL), {"open": "{}"})
    st = fleet_status.read_status(r, POOL)
    assert (st.sessions_capacity, st.sessions_open, st.sessions_idle, st.sessions_waiting) == (4, 4, 2, 1)
    assert st.sessions_ended == {"closed": 2, "idle_timeout": 1, "lost": 1}
    assert "sessions 4 open of 4, 2 idle, 1 waiting to open; ended: closed 2, idle_timeout 1, lost 1" in (
        fleet_status.format_table(st)
    )
    r.close()
