"""Chaos: 2,000 jobs while slots are killed at random and whole sandboxes die.

Every job must end with exactly one result: none lost, none published twice (counted by a
subscriber of our own), and the re-runs the kills cause stay within what they can cause
(support/answers.py).
"""

import asyncio
import collections
import random
import threading
import time

import pytest
import redis

from dispatcher import AsyncClient, WaitTimeout
from support import answers
from support import fleet_faults as ff
from warmfleet.contract import keys
from warmfleet.local.fleet import LocalFleet
from warmfleet.settings import FleetSettings
from warmfleet.contract.schema import Status

JOBS = 2000
SANDBOX_KILLS = 3
SLOTS = 2
MAX_DELIVERIES = 10


class Killer(threading.Thread):
    """Kills a random slot's runner every ~0.4 s, and a whole sandbox at 20/45/70% progress."""

    def __init__(self, fleet: LocalFleet, progress) -> None:
        super().__init__(daemon=True)
        self.fleet, self.progress = fleet, progress
        self.stop = threading.Event()
        self.runner_kills = 0
        self.sandbox_kills = 0
        self.r = redis.Redis.from_url(fleet.client_url, decode_responses=True)

    def run(self) -> None:
        rng = random.Random(7)
        marks = [0.2, 0.45, 0.7]
        while not self.stop.wait(rng.uniform(0.2, 0.6)):
            try:
                if marks and self.progress() >= marks[0]:
                    marks.pop(0)
                    pod = rng.choice([p for p in self.fleet.pods if p.alive()])
                    pod.sandbox.signal("KILL")
                    self.sandbox_kills += 1
                    continue
                live = {p.pod_id for p in self.fleet.pods if p.alive()}
                targets = [
                    (pod_id, s.runner_pid)
                    for pod_id, snap in ff.snapshots(self.r).items()
                    if pod_id in live
                    for s in snap.slot_states
                    if s.runner_pid and s.state in ("busy", "ready")
                ]
                if targets:
                    pod_id, pid = rng.choice(targets)
                    if ff.pod_by_id(self.fleet, pod_id).sandbox.exec(
                        "/bin/sh", "-c", f"kill -9 {pid}", timeout=10
                    ).returncode == 0:
                        self.runner_kills += 1
            except (StopIteration, OSError, redis.exceptions.RedisError, AssertionError):
                continue  # the pod vanished under us: that is the point


@pytest.mark.timeout(420)
def test_chaos_2000_jobs_none_lost_none_duplicated():
    with ff.env(WARMFLEET_RECLAIM_IDLE_S="2", WARMFLEET_MAX_DELIVERIES=str(MAX_DELIVERIES)):
        fleet = LocalFleet(FleetSettings(pods=2, slots=SLOTS, drain_timeout_s=15, monitor_s=0.2))
        fleet.start(ready_timeout=60)
    done = collections.Counter()
    killer = Killer(fleet, lambda: done["n"] / JOBS)
    published = answers.PublishedResults(fleet.client_url)
    try:
        published.__enter__()

        async def run_all():
            async with AsyncClient(fleet.client_url) as ac:
                ids = [await ac.submit(f"print({i} * 3)", timeout=20) for i in range(JOBS)]

                async def one(job_id):
                    try:
                        res = await ac.wait(job_id, timeout=240)
                    except WaitTimeout:
                        return None
                    done["n"] += 1
                    return res

                killer.start()
                return ids, await asyncio.gather(*(one(j) for j in ids))

        t0 = time.monotonic()
        ids, results = asyncio.run(run_all())
        elapsed = time.monotonic() - t0
        killer.stop.set()
        killer.join(timeout=30)
        runs = answers.runs_by_job(answers.fleet_logs(fleet))

        r = redis.Redis.from_url(fleet.client_url, decode_responses=True)
        unanswered = [j for j, res in zip(ids, results) if res is None]
        if unanswered:  # say where they are stuck before failing
            pending = r.xpending_range(keys.stream("default"), keys.CONSUMER_GROUP, "-", "+", 100)
            live = {p.pod_id for p in fleet.pods if p.alive()}
            print(f"\nunanswered={len(unanswered)} pending={pending} live_pods={live}")
            print(fleet.log_tails(40))
        results = [res for res in results if res is not None]
        stored = sum(1 for _ in r.scan_iter(keys.result("default", "*"), count=1000))
        by_id = collections.Counter(res.job_id for res in results)
        statuses = collections.Counter(res.status.value for res in results)
        expected = {j: f"{i * 3}\n" for i, j in enumerate(ids)}
        wrong = [res for res in results if res.status is Status.OK and res.stdout != expected[res.job_id]]
        lost = len(set(ids) - set(by_id))
        published.settle()
        published_twice = published.twice()
        reruns = answers.reruns(runs)
        # A re-run needs a death: a runner killed mid-job re-runs its one job, a sandbox
        # killed whole the jobs of its slots (README: "a job may run more than once").
        rerun_bound = killer.runner_kills + killer.sandbox_kills * SLOTS
        print(
            f"\nchaos: jobs={JOBS} results={len(results)} stored={stored} lost={lost} "
            f"published={sum(published.counts.values())} published_twice={len(published_twice)} "
            f"statuses={dict(statuses)} runner_kills={killer.runner_kills} sandbox_kills={killer.sandbox_kills} "
            f"pod_restarts={fleet.restarts} runs_logged={sum(runs.values())} reruns={reruns} (bound {rerun_bound}) "
            f"jobs_run_twice_or_more={sum(1 for n in runs.values() if n > 1)} elapsed={elapsed:.1f}s"
        )
        assert lost == 0
        assert not published_twice, published_twice  # answered once
        assert set(published.counts) == set(ids)  # every answer went out on its client's channel
        assert stored == JOBS
        assert set(runs) <= set(ids) and len(runs) >= JOBS - killer.sandbox_kills * SLOTS  # the logs are read right
        assert reruns <= rerun_bound, runs.most_common(5)
        assert max(runs.values()) <= MAX_DELIVERIES
        assert not wrong
        assert statuses["ok"] == JOBS, statuses
        assert killer.sandbox_kills == SANDBOX_KILLS and killer.runner_kills >= 10
        fleet.wait_ready(4, 60)  # the fleet ends healthy
    finally:
        killer.stop.set()
        published.__exit__(None, None, None)
        fleet.stop()
