"""A fleet and a client on Redis under Sentinel (a primary, a replica, three Sentinels on
loopback): the primary is SIGKILLed with many jobs in flight, and every job is still
answered exactly once, the fleet serving again within a stated bound. Our own subscriber
counts publishes per job and the pods' logs count runs (support/answers.py): a job may run
again after a failover (an ack or a result the new primary lacks), never publish twice
from one run, and never run more than WARMFLEET_MAX_DELIVERIES times per entry."""

from __future__ import annotations

import asyncio
import collections
import time

import pytest

from dispatcher import AsyncClient
from support import answers
from support.redis_topologies import SentinelSet, wait_for
from warmfleet.contract import keys
from warmfleet.plumbing import redis_connect
from warmfleet.local.fleet import LocalFleet
from warmfleet.settings import FleetSettings
from warmfleet.contract.schema import Status

JOBS = 1000
UNREPLICATED = 50  # submitted after the replica's link was cut: the new primary never sees them
SERVING_AGAIN_BOUND_S = 30.0  # from the kill to the first answer through the new primary
MAX_DELIVERIES = 3  # the executors' default


@pytest.fixture
def sentinels():
    s = SentinelSet(down_after_ms=1000).start()
    yield s
    s.stop()


@pytest.mark.timeout(600)
def test_primary_killed_with_1000_jobs_in_flight_every_job_answered_once(sentinels, monkeypatch):
    # A slot whose ack the failover lost holds that entry in its pending list; another
    # slot reclaims it after this idle time (the default, 30 s, only makes the tail longer).
    monkeypatch.setenv("WARMFLEET_RECLAIM_IDLE_S", "5")
    fleet = LocalFleet(FleetSettings(pods=1, slots=2, redis_url=sentinels.url, drain_timeout_s=20))
    fleet.start(ready_timeout=120)
    try:
        with answers.PublishedResults(sentinels.url) as published:
            stats = asyncio.run(_run_through_failover(sentinels))
            ids = stats["ids"]
            # the last publishes reach our subscriber a moment after the client
            wait_for(lambda: len(published.counts) >= len(ids) - 100, 30, "our subscriber to see the answers")
            published.settle()
        runs = answers.runs_by_job(answers.fleet_logs(fleet))
    finally:
        fleet.stop()
    twice = published.twice()
    print(f"\nsentinel failover: {JOBS} + {UNREPLICATED} unreplicated jobs, killed after {stats['answered_before_kill']} answers; "
          f"new primary named after {stats['promoted_s']:.1f} s, first answer through it after "
          f"{stats['serving_again_s']:.1f} s; all answered after {stats['all_answered_s']:.1f} s; "
          f"{stats['readded']} entries added again by the client; published {sum(published.counts.values())} "
          f"times for {len(published.counts)} jobs as our subscriber saw it ({published.reconnects} reconnects), "
          f"{len(twice)} published twice; runs logged {sum(runs.values())}, re-runs {answers.reruns(runs)}, "
          f"jobs run twice or more {sum(1 for n in runs.values() if n > 1)}; lost 0, answered twice 0")
    assert stats["serving_again_s"] < SERVING_AGAIN_BOUND_S
    assert set(published.counts) <= set(ids) and set(runs) <= set(ids)
    # A second publish needs a second run (a result the new primary lost, produced again).
    assert all(n <= runs[j] for j, n in twice.items()), {j: (n, runs[j]) for j, n in twice.items()}
    # Runs: at most WARMFLEET_MAX_DELIVERIES per entry; an entry lost by the failover is
    # added again by the client, once, as a new entry with its own count.
    assert max(runs.values()) <= 2 * MAX_DELIVERIES, runs.most_common(3)


async def _run_through_failover(s: SentinelSet) -> dict:
    old_primary = s.primary()
    arrivals: dict[str, list[float]] = collections.defaultdict(list)
    async with AsyncClient(s.url) as ac:
        on_message = ac.core.on_message

        def counting(data):  # every result published to us, with its arrival time
            result = on_message(data)
            arrivals[result.job_id].append(time.monotonic())
            return result

        ac.core.on_message = counting
        ids = [await ac.submit(f"import time; time.sleep(0.005); print({i})") for i in range(JOBS)]
        assert len(set(ids)) == JOBS
        waits = asyncio.gather(*(ac.wait(j, timeout=400) for j in ids))
        while len(arrivals) < JOBS // 5:  # kill with ~4/5 still queued or running
            await asyncio.sleep(0.05)
        answered_before_kill = len(arrivals)
        # Cut replication, then submit more: the primary accepts these entries (and the
        # client sees them accepted) but they never reach the replica that takes over.
        # The replica is stopped for these few milliseconds so it cannot resync first.
        s.pause(s.replica_port)
        primary = redis_connect.connect(f"redis://127.0.0.1:{s.primary_port}")
        primary.client_kill_filter(_type="replica")
        primary.close()
        late = [await ac.submit(f"print('late', {i})") for i in range(UNREPLICATED)]
        killed_at = time.monotonic()
        s.kill(s.primary_port)
        s.resume(s.replica_port)
        waits_late = asyncio.gather(*(ac.wait(j, timeout=400) for j in late))
        await asyncio.to_thread(wait_for, lambda: s.primary() != old_primary, 60, "a new primary")
        promoted_s = time.monotonic() - killed_at
        results = await waits
        late_results = await waits_late
        all_answered_s = time.monotonic() - killed_at
        readded = ac.core.readded

    # Answered exactly once: one Result per job, each the job's own output.
    assert [r.job_id for r in results] == ids
    assert [r.status for r in results] == [Status.OK] * JOBS, collections.Counter(r.status for r in results)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(JOBS)]
    assert [r.stdout for r in late_results] == [f"late {i}\n" for i in range(UNREPLICATED)]
    assert readded == UNREPLICATED  # exactly the entries the new primary never saw
    after_kill = sorted(t for times in arrivals.values() for t in times if t > killed_at)
    assert after_kill, "nothing answered after the failover"
    # The new primary holds every answer, and the stream is drained (nothing left to run).
    r = redis_connect.connect(s.url, decode_responses=True)
    assert sum(1 for v in r.mget([keys.result("default", j) for j in ids + late]) if v) == JOBS + UNREPLICATED
    (group,) = r.xinfo_groups(keys.stream("default"))
    assert group["pending"] == 0 and group["lag"] == 0
    r.close()
    return {
        "answered_before_kill": answered_before_kill,
        "promoted_s": promoted_s,
        "serving_again_s": after_kill[0] - killed_at,
        "all_answered_s": all_answered_s,
        "readded": readded,
        "ids": ids + late,
    }
