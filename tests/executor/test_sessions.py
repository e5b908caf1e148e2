"""SessionHost in-process against a real redis-server, no session process: how its loops
stop when the pod drains."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from executor import store
from executor.pod_state import PodState
from executor.sessions.state import Session
from executor.sessions.host import SessionHost
from warmfleet.settings import ExecutorSettings

POOL = "default"


@pytest.fixture
async def pod(redis_url):
    settings = ExecutorSettings(
        redis_url=redis_url, pod_id="pod-t", slots=1, sessions=1, drop_privileges=False, metrics_port=0, block_ms=50,
        heartbeat_s=0.05,
    )
    r = aioredis.from_url(redis_url, decode_responses=True)
    await store.ensure_group(r, POOL)
    yield PodState(settings, r, store.ResultStore(r, POOL, settings.result_ttl_s))
    await r.aclose()


def _swallowing(in_flight: asyncio.Event, calls: list):
    """A Redis call that is in flight until cancelled, and then returns as if it had just
    completed: what redis-py 8.1 does with a cancel that lands inside a command."""

    async def call(*args, **kwargs):
        calls.append(args)
        in_flight.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return None

    return call


@pytest.mark.timeout(30)
async def test_a_lease_refresh_that_swallows_its_cancel_does_not_keep_the_loop_running(pod):
    host = SessionHost(pod)
    host.sessions["s1"] = Session("s1", 0, None, 60, 600, None)  # type: ignore[arg-type] - only its record is used
    in_flight, calls = asyncio.Event(), []
    host.watch._renew = _swallowing(in_flight, calls)  # type: ignore[method-assign]
    loop = asyncio.create_task(host.watch.run_leases(), name="session-leases")
    await asyncio.wait_for(in_flight.wait(), 10)
    await asyncio.wait_for(host.stop_loops([loop]), 10)
    assert loop.done() and not loop.cancelled(), "the loop did not stop on its flag"  # its cancel was swallowed
    # The loop renews inline (no task of its own) and has returned: no task is left that
    # could renew again, and it renewed once.
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    assert len(calls) == 1


@pytest.mark.timeout(30)
async def test_a_drain_finishes_when_every_redis_read_swallows_its_cancel(pod):
    host = SessionHost(pod)
    in_flight, calls = asyncio.Event(), []
    host.redis.xreadgroup = _swallowing(in_flight, calls)  # type: ignore[method-assign]
    host.redis.xread = _swallowing(asyncio.Event(), calls)  # type: ignore[method-assign]
    running = asyncio.create_task(host.run())
    await asyncio.wait_for(in_flight.wait(), 10)
    pod.draining.set()
    await asyncio.wait_for(running, 15)  # STOP_WAIT_S bounds a loop that ignores everything
    assert not host.running


@pytest.mark.timeout(30)
async def test_a_malformed_call_that_names_its_id_is_answered_rejected(pod):
    import json
    import time
    import uuid

    from warmfleet.contract import keys
    from warmfleet.contract.schema import Result, Status

    host = SessionHost(pod)
    session = Session("s1", 0, None, 60, 600, None)  # type: ignore[arg-type] - no call reaches a process
    worker = asyncio.create_task(host.calls.serve(session))
    named, anonymous = uuid.uuid4().hex, {"code": "print(1)"}
    session.queue.put_nowait(("1-0", {"call": json.dumps(anonymous)}))  # nothing to answer to: dropped
    session.queue.put_nowait(("2-0", {"call": json.dumps({"call_id": named, "code": "print(1)", "timeout": "soon"})}))
    try:
        deadline = time.monotonic() + 10
        while (raw := await pod.redis.get(keys.result(POOL, named))) is None:
            assert time.monotonic() < deadline, "the malformed call was never answered"
            await asyncio.sleep(0.02)  # poll with a deadline
        result = Result.model_validate_json(raw)
        assert result.status is Status.REJECTED and "malformed session call" in result.error and "soon" in result.error
        assert session.calls == 0 and not session.ending  # nothing ran; the session goes on
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
