"""Recycling a real local fleet under load: every pod recycled at least twice by the GC
policy (short maximum age), no job lost, and the serving capacity never below the floor."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from dispatcher import Client
from warmfleet.settings import RecyclePolicy
from warmfleet.contract import keys
from warmfleet.local.fleet import LocalFleet
from warmfleet.settings import FleetSettings
from warmfleet.contract.schema import Status
from warmfleet.contract.snapshot import parse_all

PODS, SLOTS, FLOOR = 2, 2, 2  # one pod (2 slots) may be out at a time: 4 - 2 = 2
RECYCLES_PER_POD = 2


def serving_now(r: redis.Redis, pool: str) -> int:
    """Slots of live, non-draining pods that are ready for or running a job."""
    ids = r.zrange(keys.pods(pool), 0, -1)
    raws = r.mget([keys.pod(pool, i) for i in ids]) if ids else []
    return sum(pod.serving_slots for pod in parse_all(raws))


@pytest.fixture
def recycling_fleet(monkeypatch):
    # Pods pick up a drain request on their next heartbeat: beat often so a recycle is quick.
    monkeypatch.setenv("WARMFLEET_HEARTBEAT_S", "0.2")
    policy = RecyclePolicy(
        max_age_s=4.0, age_jitter=0.3, max_recycling=1, min_serving_slots=FLOOR, drain_timeout_s=20, check_s=0.2
    )
    fleet = LocalFleet(FleetSettings(pods=PODS, slots=SLOTS, drain_timeout_s=20), recycle_policy=policy)
    fleet.start(ready_timeout=60)
    yield fleet
    fleet.stop()


@pytest.mark.timeout(110)
def test_every_pod_recycles_twice_under_load_without_losing_a_job(recycling_fleet):
    fleet = recycling_fleet
    r = redis.Redis.from_url(fleet.client_url, decode_responses=True)
    pool = fleet.settings.pool
    done = threading.Event()
    min_serving = [serving_now(r, pool)]
    samples = [0]

    def watch_capacity() -> None:
        while not done.is_set():
            min_serving[0] = min(min_serving[0], serving_now(r, pool))
            samples[0] += 1
            done.wait(0.02)  # sampling period of the capacity watcher

    watcher = threading.Thread(target=watch_capacity, daemon=True)
    watcher.start()
    job_ids: list[str] = []
    deadline = time.monotonic() + 80
    t0 = time.monotonic()
    with Client(fleet.client_url) as client:
        # Steady load: a job every 30 ms, each sleeping 20-60 ms, until every pod index has
        # been recycled twice (or the deadline, which fails the test below).
        i = 0
        while time.monotonic() < deadline:
            by_index = fleet.recycler.recycles_by_index()
            if len(by_index) == PODS and min(by_index.values()) >= RECYCLES_PER_POD:
                break
            job_ids.append(client.submit(f"import time; time.sleep({0.02 + (i % 5) * 0.01}); print({i})"))
            i += 1
            time.sleep(0.03)  # the load's pacing (forks in gVisor cost CPU), not synchronisation
        results = [client.wait(j, timeout=60) for j in job_ids]
    elapsed = time.monotonic() - t0
    done.set()
    watcher.join()

    by_index = fleet.recycler.recycles_by_index()
    completed = sum(res.status is Status.OK for res in results)
    reasons = {k: int(v) for k, v in r.hgetall(keys.recycles(pool)).items()}
    drains = [rec.drain_s for _i, rec, _new in fleet.recycler.history]
    print(
        f"\nrecycle figures: {elapsed:.1f} s, recycles per pod index {dict(sorted(by_index.items()))}, "
        f"by reason {reasons}, jobs submitted {len(job_ids)} completed ok {completed}, "
        f"min serving slots {min_serving[0]} (floor {FLOOR}, full {PODS * SLOTS}, {samples[0]} samples), "
        f"drain s max {max(drains, default=0):.2f}, all drained {all(rec.drained for _i, rec, _n in fleet.recycler.history)}"
    )
    assert len(by_index) == PODS and min(by_index.values()) >= RECYCLES_PER_POD, by_index
    assert all(rec.drained for _i, rec, _new in fleet.recycler.history), "a pod was killed before it drained"
    assert completed == len(job_ids), [res for res in results if res.status is not Status.OK][:3]
    assert [res.stdout for res in results] == [f"{n}\n" for n in range(len(job_ids))]
    assert min_serving[0] >= FLOOR
    assert reasons.get("max_age", 0) >= PODS * RECYCLES_PER_POD
    info = {g["name"]: g for g in r.xinfo_groups(keys.stream(pool))}[keys.CONSUMER_GROUP]
    assert info["pending"] == 0 and r.xlen(keys.dead_letters(pool)) == 0
    assert fleet.restarts == 0  # every replacement was a recycle, none a crash
    # Each recycled pod's sandbox is gone; the fleet still has its full size, all serving.
    fleet.wait_ready(PODS * SLOTS, 30)
    assert len({p.pod_id for p in fleet.pods}) == PODS
    r.close()
