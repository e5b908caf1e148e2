"""Redis restarted while a /v1 job streams through the service: the stream ends cleanly
(its result, or an error line saying why: never a hang or a cut without a last line),
and the service answers the next request. A fleet of its own: its Redis goes down."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import httpx
import pytest
from support.http_service import serve

from warmfleet.local.fleet import FleetSettings, LocalFleet
from warmfleet.local.redis_server import EmbeddedRedis


@pytest.mark.timeout(180)
def test_a_stream_ends_cleanly_across_a_redis_restart_and_the_service_recovers():
    workdir = tempfile.mkdtemp(prefix="warmfleet-test-http-aof-")
    server = EmbeddedRedis(workdir, os.path.join(workdir, "redis.sock"), persistent=True)
    server.start()
    fleet = LocalFleet(FleetSettings(redis_url=server.url, pods=1, slots=1, sessions=0, drain_timeout_s=10))
    try:
        fleet.start(ready_timeout=60)
        with serve(server.url, keepalive_s=0.5) as service:
            key = service.add_tenant("restart")  # kept in the AOF across the restart
            code = "import time\nprint('a', flush=True)\ntime.sleep(3)\nprint('b', flush=True)"
            with httpx.Client(base_url=service.url, headers={"X-API-KEY": key}, timeout=60) as http:
                with http.stream("POST", "/v1/jobs", json={"code": code, "stream": True}) as resp:
                    lines = resp.iter_lines()
                    first = json.loads(next(line for line in lines if '"keepalive"' not in line))
                    assert first == {"type": "stdout", "data": "a\n"}
                    server.stop()  # SIGTERM: Redis writes its AOF and exits
                    server.start()
                    rest = [json.loads(line) for line in lines if line]
                last = rest[-1]
                print(f"redis restart mid-stream: the stream ended with a {last['type']} line")
                assert last["type"] in ("result", "error"), rest
                if last["type"] == "result":  # the client's retries carried it over the restart
                    assert last["result"]["stdout"] == "a\nb\n"
                else:
                    assert last["code"] == 503 and last["message"]
                after = http.post("/v1/jobs", json={"code": "print(6 * 7)"})
                assert after.status_code == 200 and after.json()["stdout"] == "42\n"
    finally:
        fleet.stop()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
