"""The dispatcher against a real fleet: many in flight, validation, the executor's own checks."""

import asyncio
import json

import pytest
import redis

from dispatcher import AsyncClient, Client, InvalidJob
from warmfleet.contract import keys
from warmfleet.contract.schema import Status


def test_map_of_200_returns_results_in_order(client):
    results = client.map([f"print({i} * {i})" for i in range(200)])
    assert [r.stdout for r in results] == [f"{i * i}\n" for i in range(200)]
    assert {r.status for r in results} == {Status.OK}


@pytest.mark.timeout(180)
def test_async_client_holds_1000_in_flight_on_few_connections(fleet):
    async def go():
        async with AsyncClient(fleet.client_url) as ac:
            ids = [await ac.submit(f"print({i})") for i in range(1000)]
            waits = asyncio.gather(*(ac.wait(j) for j in ids))
            peak = 0
            while not waits.done():  # sample the server's view while all 1,000 are in flight
                names = [c["name"] for c in await ac.redis.client_list()]
                peak = max(peak, names.count(f"warmfleet-client-{ac.client_id}"))
                await asyncio.wait([waits], timeout=0.5)
            return waits.result(), peak

    results, peak = asyncio.run(go())
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(1000)]
    assert 1 <= peak <= 33  # the pool's bound plus the one pub/sub connection


def test_invalid_arguments_raise_before_anything_is_enqueued(client, fleet):
    r = redis.Redis.from_url(fleet.client_url)
    before = r.xinfo_stream(keys.stream("default"))["entries-added"]
    for bad in (
        dict(code=""),
        dict(code="x" * (2 << 20)),
        dict(code="print(1)", language="cobol"),
        dict(code="print(1)", timeout=10_000),
        dict(code="print(1)", cpu_time=-1),
        dict(code="print(1)", memory_mb="lots"),
    ):
        with pytest.raises(InvalidJob):
            client.submit(**bad)
    assert r.xinfo_stream(keys.stream("default"))["entries-added"] == before


def test_executor_rejects_malformed_entries_and_keeps_serving(client, fleet):
    r = redis.Redis.from_url(fleet.client_url, decode_responses=True)
    stream = keys.stream("default")
    good = {"job_id": "manual1", "code": "print(1)", "timeout": 5.0, "cpu_time": 5.0, "memory_mb": 128}
    r.xadd(stream, {"job": json.dumps({**good, "job_id": "bad-types", "timeout": "5"})})
    r.xadd(stream, {"job": json.dumps({**good, "job_id": "bad-lang", "language": "cobol"})})
    r.xadd(stream, {"job": json.dumps({**good, "job_id": "too-long", "timeout": 99999.0})})
    r.xadd(stream, {"nothing": "here"})
    r.xadd(stream, {"job": "{not json"})
    for job_id, why in (("bad-types", "timeout"), ("bad-lang", "unknown language"), ("too-long", "maximum")):
        res = client.wait(job_id, timeout=30)
        assert res.status is Status.REJECTED and why in res.error, res
    assert client.run("print('still serving')").stdout == "still serving\n"
    deadline_ok = False
    for _ in range(100):
        if r.xlen(keys.dead_letters("default")) >= 2:
            deadline_ok = True
            break
        client.run("pass")  # each job is a round trip: the dead letters are written by then
    assert deadline_ok


def test_idempotency_key_enqueues_once(client):
    a = client.submit("print('once')", idempotency_key="k-123")
    b = client.submit("print('twice')", idempotency_key="k-123")
    assert a == b
    assert client.wait(a).stdout == "once\n"
    with Client(client.url) as other:  # another client waiting on the same job gets it too
        assert other.wait(other.submit("print('x')", idempotency_key="k-123"), timeout=10).stdout == "once\n"


def _mget_calls(r: redis.Redis) -> int:
    return r.info("commandstats").get("cmdstat_mget", {}).get("calls", 0)


def test_run_waits_on_the_subscription_alone(fleet, monkeypatch):
    """run() subscribes before enqueueing, so it needs no MGET before waiting: one round
    trip less per job (the periodic recheck, every recheck_s, remains the safety net)."""
    monkeypatch.setenv("WARMFLEET_RECHECK_S", "30")  # keep the periodic safety net out of the count
    r = redis.Redis.from_url(fleet.client_url)
    with Client(fleet.client_url) as c:
        c.run("pass")  # subscribe and fetch the limits outside the count
        before = _mget_calls(r)
        assert [c.run(f"print({i})").stdout for i in range(5)] == [f"{i}\n" for i in range(5)]
        assert _mget_calls(r) == before

    async def go():
        async with AsyncClient(fleet.client_url) as ac:
            await ac.run("pass")
            start = _mget_calls(r)
            outs = [(await ac.run(f"print({i})")).stdout for i in range(5)]
            return start, outs

    start, outs = asyncio.run(go())
    assert outs == [f"{i}\n" for i in range(5)]
    assert _mget_calls(r) == start


def _idle(r) -> None:
    """No slot busy (a slot's flip to ready is published within 0.5 s): the next busy slot
    is then the held job's, not a finished job's stale state."""
    from support import fleet_faults as ff

    ff.poll(lambda: ff.busy_slot(r) is None, 20, "every slot to be ready")


def _started(r):
    """(pod id, slot) of the held job once it runs (the only job running in the fleet)."""
    from support import fleet_faults as ff

    return ff.poll(lambda: ff.busy_slot(r), 20, "the held job to start")


def test_a_client_gone_while_its_job_runs_leaves_the_result_to_a_new_client(fleet):
    """The submitting client disconnects mid-job: the result is stored all the same, and a
    client that connects afterwards gets it by job id."""
    from support import fleet_faults as ff

    r = redis.Redis.from_url(fleet.client_url, decode_responses=True)
    first = Client(fleet.client_url)
    _idle(r)
    job = first.submit(ff.held_job("finished without its client"), timeout=60)
    pod_id, slot = _started(r)
    first.close()  # gone: its reply channel has no subscriber any more
    ff.poll(lambda: r.pubsub_numsub(first.channel)[0][1] == 0, 10, "the first client's subscription to go")
    ff.release(fleet, pod_id, slot.slot)
    ff.poll(lambda: r.exists(keys.result("default", job)), 30, "the result to be stored")
    with Client(fleet.client_url) as second:
        res = second.wait(job, timeout=10)
    r.close()
    assert (res.job_id, res.status, res.stdout) == (job, Status.OK, "finished without its client\n"), res


def test_a_lost_notification_is_caught_by_the_periodic_recheck(fleet, monkeypatch):
    """The client's subscription misses the result's publish (dropped here by
    unsubscribing its channel behind its back): the wait still returns the result, read
    from its stored key by the recheck every WARMFLEET_RECHECK_S (ClientSettings.recheck_s;
    the bound below is that documented period, with room for a loaded machine)."""
    from support import fleet_faults as ff

    recheck_s = 1.0
    monkeypatch.setenv("WARMFLEET_RECHECK_S", str(recheck_s))
    r = redis.Redis.from_url(fleet.client_url, decode_responses=True)
    with Client(fleet.client_url) as c:
        _idle(r)
        job = c.submit(ff.held_job("caught by the recheck"), timeout=60)
        pod_id, slot = _started(r)
        c._pubsub.unsubscribe(c.channel)  # the notification will go nowhere
        ff.poll(lambda: r.pubsub_numsub(c.channel)[0][1] == 0, 10, "the subscription to be dropped")
        ff.release(fleet, pod_id, slot.slot)
        ff.poll(lambda: r.exists(keys.result("default", job)), 30, "the result to be stored")
        res = c.wait(job, timeout=3 * recheck_s)  # WaitTimeout if only a notification could answer it
        assert r.pubsub_numsub(c.channel)[0][1] == 0  # and it was not re-subscribed meanwhile
    r.close()
    assert (res.job_id, res.status, res.stdout) == (job, Status.OK, "caught by the recheck\n"), res
