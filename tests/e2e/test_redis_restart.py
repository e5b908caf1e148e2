"""Redis restarted under load: executors and clients reconnect and carry on; nothing lost,
nothing published twice, no job run twice (nothing died: support/answers.py)."""

import os
import shutil
import tempfile
import threading

import pytest
import redis

from dispatcher import Client
from warmfleet.contract import keys
from warmfleet.local.fleet import LocalFleet
from warmfleet.settings import FleetSettings
from warmfleet.local.redis_server import EmbeddedRedis
from warmfleet.contract.schema import Status
from support import answers
from support.fleet_faults import poll

JOBS = 300


@pytest.mark.timeout(240)
def test_redis_restart_under_load_loses_nothing():
    workdir = tempfile.mkdtemp(prefix="warmfleet-test-aof-")
    server = EmbeddedRedis(workdir, os.path.join(workdir, "redis.sock"), persistent=True)
    server.start()
    fleet = LocalFleet(FleetSettings(redis_url=server.url, pods=1, slots=2, drain_timeout_s=15))
    try:
        fleet.start(ready_timeout=60)
        results = []
        with answers.PublishedResults(server.url) as published, Client(server.url) as client:
            worker = threading.Thread(
                target=lambda: results.extend(client.map([f"print({i} + 1)" for i in range(JOBS)])), daemon=True
            )
            worker.start()

            def stored() -> int:
                try:
                    r = redis.Redis.from_url(server.url)
                    try:
                        return sum(1 for _ in r.scan_iter(keys.result("default", "*"), count=1000))
                    finally:
                        r.close()
                except redis.exceptions.ConnectionError:
                    return 0

            poll(lambda: stored() >= 50, 60, "50 results before the restart")
            server.stop()  # SIGTERM: Redis writes its AOF and exits
            server.start()
            worker.join(timeout=180)
            assert not worker.is_alive(), "client still waiting after the restart"
            published.settle()
        runs = answers.runs_by_job(answers.fleet_logs(fleet))
        print(f"redis restart: jobs={JOBS} results={len(results)} stored={stored()} "
              f"published={sum(published.counts.values())} published_twice={len(published.twice())} "
              f"subscriber_reconnects={published.reconnects} runs={sum(runs.values())} reruns={answers.reruns(runs)}")
        assert [r.stdout for r in results] == [f"{i + 1}\n" for i in range(JOBS)]
        assert {r.status for r in results} == {Status.OK}
        assert stored() == JOBS  # one result per job: none lost
        assert published.reconnects >= 1  # our subscriber saw the restart too
        assert not published.twice()  # answered once (a publish made while it reconnected is missed, not doubled)
        # No process died, so nothing runs twice: a slot retries its store through the
        # outage (SET NX), it never runs the job again.
        assert set(runs) == {r.job_id for r in results} and answers.reruns(runs) == 0, runs.most_common(3)
    finally:
        fleet.stop()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
