"""What a client does after a failover it observed (request.READD_LOST), against a real
redis-server: jobs whose entry and result the new primary lacks are added again under
the same job id; nothing else is touched. The whole path through a Sentinel failover:
tests/e2e/test_redis_sentinel.py."""

from __future__ import annotations

import asyncio
import json

import redis

from dispatcher import AsyncClient, Client
from warmfleet.contract import keys
from warmfleet.contract.schema import Result, Status


def entries(r: redis.Redis) -> dict[str, str]:
    """job id -> entry id of every entry on the default pool's stream."""
    return {json.loads(f["job"])["job_id"]: eid for eid, f in r.xrange(keys.stream("default"))}


def lose_and_answer(r: redis.Redis, lost: str, answered: str) -> None:
    """What a failover can leave behind: one job's entry gone, another's result stored
    (published to nobody: the client was away)."""
    r.xdel(keys.stream("default"), entries(r)[lost])
    r.set(keys.result("default", answered), Result(job_id=answered, status=Status.OK, stdout="x\n").to_json())


def test_sync_client_readds_only_the_lost_entry_under_the_same_job_id(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    with Client(redis_url) as c:
        lost, answered, queued = (c.submit(f"print({i})") for i in range(3))
        keyed = c.submit("print(3)", idempotency_key="k1")
        before = entries(r)
        lose_and_answer(r, lost, answered)
        assert set(c.core.in_flight) == {lost, answered, queued, keyed}
        c._check_lost = True  # as a re-subscription after a reconnect sets it
        assert c.wait(answered, timeout=5).stdout == "x\n"
        after = entries(r)
        assert set(after) == {lost, answered, queued, keyed}
        for untouched in (answered, queued, keyed):
            assert after[untouched] == before[untouched]
        assert after[lost] != before[lost] and c.core.in_flight[lost][0] == after[lost]
        assert c.core.readded == 1
        # a second check finds the re-added entry and adds nothing
        for keys_, args in c.core.readd_calls():
            assert c.core.on_readded(c._readd(keys=keys_, args=args)) == 0
        assert len(r.xrange(keys.stream("default"))) == 4
    r.close()


def test_async_client_readds_on_a_resubscription(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)

    async def go():
        async with AsyncClient(redis_url) as ac:
            ids = [await ac.submit(f"print({i})") for i in range(150)]  # more than one READD batch
            for job_id in ids[::3]:
                r.xdel(keys.stream("default"), entries(r)[job_id])
            assert len(ac.core.readd_calls()) == 2
            await ac._readd_lost()
            return ids, ac.core.readded

    ids, readded = asyncio.run(go())
    assert readded == 50
    assert sorted(entries(r)) == sorted(ids)  # every job has exactly one entry again
    r.close()


def test_the_first_subscription_is_not_a_failover():
    from dispatcher.core import ClientCore

    core = ClientCore("redis://127.0.0.1:1", None)
    assert core.on_subscribed() is False
    assert core.on_subscribed() is True


def test_sync_client_notices_its_subscription_was_lost_and_readds(redis_url):
    """The trigger itself: redis-py reconnects and re-subscribes on its own, and the second
    subscribe confirmation is what tells the client it was away."""
    from dispatcher.errors import WaitTimeout

    r = redis.Redis.from_url(redis_url, decode_responses=True)
    with Client(redis_url) as c:
        job_id = c.submit("print(1)")
        r.xdel(keys.stream("default"), entries(r)[job_id])
        assert r.client_kill_filter(_type="pubsub") >= 1
        try:
            c.wait(job_id, timeout=3)
        except WaitTimeout:
            pass  # no executor here: only the re-add is expected
        assert c.core.readded == 1 and job_id in entries(r)
    r.close()


def test_async_client_notices_its_subscription_was_lost_and_readds(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)

    async def go():
        async with AsyncClient(redis_url) as ac:
            job_id = await ac.submit("print(1)")
            r.xdel(keys.stream("default"), entries(r)[job_id])
            assert r.client_kill_filter(_type="pubsub") >= 1
            for _ in range(100):  # the listener reconnects within its backoff
                if ac.core.readded:
                    break
                await asyncio.sleep(0.05)
            return job_id, ac.core.readded

    job_id, readded = asyncio.run(go())
    assert readded == 1 and job_id in entries(r)
    r.close()
