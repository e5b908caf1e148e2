"""Redis restarted under load: executors and clients reconnect and carry on; nothing lost."""

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
        with Client(server.url) as client:
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
        assert [r.stdout for r in results] == [f"{i + 1}\n" for i in range(JOBS)]
        assert {r.status for r in results} == {Status.OK}
        assert stored() == JOBS  # one result per job: none lost, none twice
        print(f"redis restart: jobs={JOBS} results={len(results)} stored={stored()}")
    finally:
        fleet.stop()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
