"""EntrySource against a real redis-server: own pending entries first, reclaiming from a
silent consumer, keeping a long job's claim fresh."""

from __future__ import annotations

import asyncio
import time

from executor.delivery import EntrySource
from warmfleet.contract import keys

POOL = "default"
RECLAIM_IDLE_S = 0.3  # the settings' minimum


def _source(r, consumer: str) -> EntrySource:
    return EntrySource(r, POOL, consumer, block_ms=50, reclaim_idle_s=RECLAIM_IDLE_S)


async def _idle_ms(r, entry_id: str) -> int:
    (info,) = await r.xpending_range(keys.stream(POOL), keys.CONSUMER_GROUP, min=entry_id, max=entry_id, count=1)
    return info["time_since_delivered"]


async def test_new_entries_then_after_a_restart_its_own_pending_ones_first(r):
    first = await r.xadd(keys.stream(POOL), {"job": "1"})
    src = _source(r, "pod/0")
    src._next_reclaim = float("inf")  # this test is about pending-first, not reclaiming
    (entry,) = await src.next()
    assert (entry.entry_id, entry.fields, entry.redelivered) == (first, {"job": "1"}, False)
    await r.xadd(keys.stream(POOL), {"job": "2"})
    restarted = _source(r, "pod/0")
    restarted._next_reclaim = float("inf")
    (again,) = await restarted.next()
    assert (again.entry_id, again.redelivered) == (first, True)  # unacknowledged: still ours
    await r.xack(keys.stream(POOL), keys.CONSUMER_GROUP, first)
    (fresh,) = await restarted.next()
    assert (fresh.fields, fresh.redelivered) == ({"job": "2"}, False)
    assert await restarted.delivery_count(fresh.entry_id) == 1


async def test_an_entry_of_a_silent_consumer_is_reclaimed(r):
    entry_id = await r.xadd(keys.stream(POOL), {"job": "x"})
    silent = _source(r, "gone/0")
    silent._next_reclaim = float("inf")
    await silent.next()
    live = _source(r, "pod/0")
    deadline = time.monotonic() + 10
    while True:
        entries = await live.next()
        if entries:
            break
        assert time.monotonic() < deadline, "never reclaimed"
    assert (entries[0].entry_id, entries[0].redelivered, live.reclaimed) == (entry_id, True, 1)
    assert await live.delivery_count(entry_id) == 2


async def test_keep_claim_keeps_a_long_job_from_being_reclaimed(r):
    entry_id = await r.xadd(keys.stream(POOL), {"job": "long"})
    src = _source(r, "pod/0")
    src._next_reclaim = float("inf")
    await src.next()
    xclaim, refreshed = r.xclaim, asyncio.Event()
    refreshes = 0

    async def counted_xclaim(*args, **kwargs):
        nonlocal refreshes
        result = await xclaim(*args, **kwargs)
        refreshes += 1
        if refreshes == 4:
            refreshed.set()
        return result

    r.xclaim = counted_xclaim
    started = time.monotonic()
    async with src.keep_claim(entry_id):
        # the "job" runs until its claim was refreshed four times (every third of the idle
        # time: past the idle time itself), then looks at how idle its entry is
        await asyncio.wait_for(refreshed.wait(), 30)
        assert time.monotonic() - started > RECLAIM_IDLE_S  # long enough to have been reclaimable
        assert await _idle_ms(r, entry_id) < RECLAIM_IDLE_S * 1000
    assert await src.delivery_count(entry_id) == 1  # refreshing is not a delivery
    other = _source(r, "pod/1")
    other._next_reclaim = 0.0
    assert await other._reclaim_one() == []  # right after the job, still fresh


async def test_keep_claim_ends_while_a_refresh_is_in_flight(r):
    """The job ends while its claim's XCLAIM is on the wire: redis-py swallows a
    cancellation that lands there, and a refresher awaited after its cancel refreshed for
    ever, holding the result (the chaos test's lost job). Exiting must not wait on it, and
    the refresher must stop by itself."""
    entry_id = await r.xadd(keys.stream(POOL), {"job": "ends mid-refresh"})
    src = _source(r, "pod/0")
    src._next_reclaim = float("inf")
    await src.next()
    xclaim = r.xclaim
    in_flight = asyncio.Event()
    calls = 0

    async def counted_xclaim(*args, **kwargs):
        nonlocal calls
        calls += 1
        in_flight.set()
        return await xclaim(*args, **kwargs)

    r.xclaim = counted_xclaim
    for _ in range(20):
        in_flight.clear()

        async def job():
            async with src.keep_claim(entry_id):
                await in_flight.wait()  # the refresher's XCLAIM was just sent

        body = asyncio.create_task(job())
        done, _ = await asyncio.wait({body}, timeout=30)
        assert body in done, "keep_claim never returned: its refresher was awaited"
        body.result()
    settled = calls

    def refreshers():
        return [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "EntrySource._refresh"]

    # Each refresher must end by itself (its XCLAIM in flight returns, it sees the claim
    # given up): wait for that, then no call may have followed.
    deadline = time.monotonic() + 10
    while refreshers():
        assert time.monotonic() < deadline, "a refresher kept running after its job ended"
        await asyncio.sleep(0.01)  # poll with a deadline
    assert calls == settled, "a refresher kept refreshing after its job ended"
