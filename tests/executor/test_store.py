"""ResultStore against a real redis-server: a result is stored once, published only
when stored and only inside the pool, and the entry is acknowledged and deleted."""

from __future__ import annotations

import pytest

from executor import store
from warmfleet.contract import keys, messages
from warmfleet.contract.schema import Result, Status

POOL = "default"


@pytest.mark.timeout(10)
async def test_making_the_group_again_is_harmless(r):
    entry_id = await _delivered(r)
    await store.ensure_group(r, POOL)  # every pod does it at start, over a live group
    pending = await r.xpending(keys.stream(POOL), keys.CONSUMER_GROUP)
    assert pending["pending"] == 1 and pending["min"] == entry_id


async def _delivered(r) -> str:
    entry_id = await r.xadd(keys.stream(POOL), {"job": "{}"})
    await r.xreadgroup(keys.CONSUMER_GROUP, "pod/0", {keys.stream(POOL): ">"})
    return entry_id


async def _subscribed(r, channel: str):
    pubsub = r.pubsub()
    await pubsub.subscribe(channel)
    while (msg := await pubsub.get_message(timeout=5)) is None or msg["type"] != "subscribe":
        pass  # until the confirmation: from then on nothing published is missed
    return pubsub


async def _messages(pubsub) -> list[str]:
    out = []
    while (msg := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)) is not None:
        out.append(msg["data"])
    return out


async def test_stored_once_published_once_acknowledged_each_time(r):
    results = store.ResultStore(r, POOL, ttl_s=60)
    channel = keys.reply_channel(POOL, "c1")
    sub = await _subscribed(r, channel)
    first = Result(job_id="j1", status=Status.OK, stdout="first")
    assert await results.store_and_ack(await _delivered(r), first, channel)
    second = Result(job_id="j1", status=Status.OK, stdout="second")  # a second delivery's answer
    assert not await results.store_and_ack(await _delivered(r), second, channel)
    assert Result.from_json(await r.get(keys.result(POOL, "j1"))) == first
    assert [Result.from_json(m) for m in await _messages(sub)] == [first]
    assert await r.xlen(keys.stream(POOL)) == 0
    assert 0 < await r.ttl(keys.result(POOL, "j1")) <= 60
    assert await results.exists("j1") and not await results.exists("j2")
    await sub.aclose()


async def test_never_publishes_outside_the_pools_namespace(r):
    results = store.ResultStore(r, POOL, ttl_s=60)
    sub = await _subscribed(r, "elsewhere")
    assert await results.store_and_ack(await _delivered(r), Result(job_id="j2", status=Status.OK), "elsewhere")
    assert await _messages(sub) == []
    await sub.aclose()


async def test_output_records_dead_letters_and_plain_acks(r):
    results = store.ResultStore(r, POOL, ttl_s=60)
    await results.add_output("j3", messages.chunk_record(messages.Chunk(stream="stderr", data="x")))
    await results.add_output("j3", messages.END_RECORD)
    records = [f for _, f in await r.xrange(keys.output(POOL, "j3"))]
    assert [messages.read_record(f) for f in records] == [("stderr", "x"), None]
    assert 0 < await r.ttl(keys.output(POOL, "j3")) <= 60
    await results.dead_letter(await _delivered(r), {"job": "garbage"}, "malformed job")
    (_, dead), = await r.xrange(keys.dead_letters(POOL))
    assert dead["reason"] == "malformed job" and "garbage" in dead["fields"]
    await results.ack_only(await _delivered(r))
    assert await r.xlen(keys.stream(POOL)) == 0
