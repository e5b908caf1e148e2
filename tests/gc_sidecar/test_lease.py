"""The fleet-wide recycle lease against a real redis-server: cap, floor, expiry."""

import time

import pytest
import redis

from gc_sidecar.lease import RecycleLease
from warmfleet.contract import keys
from warmfleet.contract.snapshot import PodSnapshot

POOL = "default"


@pytest.fixture
def r(redis_url):
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    yield conn
    conn.close()


def publish(r, pod_id, ready=2, busy=0, draining=False):
    # Written as the supervisor writes it: the Lua reads the PodSnapshot's own JSON.
    snap = PodSnapshot(pod_id=pod_id, slots=ready + busy, ready=ready, busy=busy, draining=draining)
    r.set(keys.pod(POOL, pod_id), snap.to_json())
    r.zadd(keys.pods(POOL), {pod_id: time.time()})
    return snap


def test_cap_bounds_how_many_recycle_at_once(r):
    for i in range(4):
        publish(r, f"p{i}")
    lease = RecycleLease(r, POOL, max_recycling=2, min_serving_slots=0)
    assert [lease.acquire(f"p{i}", 60).granted for i in range(4)] == [True, True, False, False]
    assert lease.acquire("p2", 60).why == "cap"
    assert lease.acquire("p0", 60).why == "renewed"
    lease.release("p0")
    assert lease.acquire("p2", 60).granted
    assert sorted(lease.holders()) == ["p1", "p2"]


def test_floor_counts_serving_slots_of_the_others(r):
    publish(r, "a", ready=1, busy=1)
    publish(r, "b", ready=2)
    publish(r, "c", ready=2, draining=True)  # draining: not capacity
    lease = RecycleLease(r, POOL, max_recycling=3, min_serving_slots=3)
    answer = lease.acquire("a", 60)
    assert not answer.granted and answer.why == "floor" and answer.others_serving == 2
    publish(r, "d", ready=1)
    answer = lease.acquire("a", 60)
    assert answer.granted and answer.others_serving == 3
    # "a" now holds the lease: it no longer counts for "b"
    assert lease.acquire("b", 60).why == "floor"


def test_a_lapsed_lease_frees_its_place(r):
    publish(r, "x")
    publish(r, "y")
    lease = RecycleLease(r, POOL, max_recycling=1, min_serving_slots=0)
    assert lease.acquire("x", 0.2).granted
    assert lease.acquire("y", 60).why == "cap"
    deadline = time.monotonic() + 5
    while not lease.acquire("y", 60).granted:
        assert time.monotonic() < deadline
        time.sleep(0.05)  # poll until the lease's expiry passes


def test_the_lua_counts_what_the_snapshot_calls_serving_slots(r):
    """The lease reads PodSnapshot JSON inside Redis: its count must be serving_slots."""
    pods = [publish(r, "m0", ready=3, busy=1), publish(r, "m1", ready=0, busy=2),
            publish(r, "m2", ready=4, draining=True), publish(r, "m3", ready=0)]
    answer = RecycleLease(r, POOL, max_recycling=5, min_serving_slots=0).acquire("me", 60)
    assert answer.granted and answer.others_serving == sum(p.serving_slots for p in pods) == 6
