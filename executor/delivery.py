"""Where a slot's entries come from, and how it keeps them.

Order (docs/design/field-notes.md, Redis Streams): its own pending list first (after a
start or a runner crash), then, now and then, one entry reclaimed with XAUTOCLAIM from
a consumer that went silent (a killed pod), then new entries. A job that runs longer
than the reclaim idle time keeps its claim fresh with XCLAIM ... JUSTID, which resets
the idle time without counting a delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis

from warmfleet.contract import keys

log = logging.getLogger("warmfleet.delivery")


@dataclass
class Entry:
    entry_id: str
    fields: dict | None
    redelivered: bool  # from a pending list or a reclaim: may have run before


class EntrySource:
    def __init__(self, redis: Redis, pool: str, consumer: str, *, block_ms: int, reclaim_idle_s: float,
                 stream: str | None = None) -> None:
        """`stream`: the group's stream to read (the pool's job stream unless said)."""
        self.redis = redis
        self.stream = stream or keys.stream(pool)
        self.consumer = consumer
        self.block_ms = block_ms
        self.reclaim_idle_ms = int(reclaim_idle_s * 1000)
        self.reclaim_every_s = reclaim_idle_s / 2
        self.pending_first = True
        self._next_reclaim = time.monotonic() + random.uniform(0, self.reclaim_every_s)
        self._cursor = "0-0"
        self.reclaimed = 0

    def reread_pending(self) -> None:
        """After a runner crash: the entry it held is still ours, pending."""
        self.pending_first = True

    async def next(self) -> list[Entry]:
        if self.pending_first:
            resp = await self.redis.xreadgroup(keys.CONSUMER_GROUP, self.consumer, {self.stream: "0"}, count=1)
            entries = resp[0][1] if resp else []
            if entries:
                return [Entry(eid, fields, True) for eid, fields in entries]
            self.pending_first = False
        if time.monotonic() >= self._next_reclaim:
            self._next_reclaim = time.monotonic() + self.reclaim_every_s * random.uniform(0.8, 1.2)
            claimed = await self._reclaim_one()
            if claimed:
                return claimed
        resp = await self.redis.xreadgroup(
            keys.CONSUMER_GROUP, self.consumer, {self.stream: ">"}, count=1, block=self.block_ms
        )
        return [Entry(eid, fields, False) for eid, fields in (resp[0][1] if resp else [])]

    async def _reclaim_one(self) -> list[Entry]:
        # XAUTOCLAIM walks the group's pending list from a cursor; entries idle longer
        # than the reclaim time belong to consumers that stopped (their live peers keep
        # theirs fresh). Redis 7 also drops deleted ids from the list for us.
        resp = await self.redis.xautoclaim(
            self.stream, keys.CONSUMER_GROUP, self.consumer, self.reclaim_idle_ms, start_id=self._cursor, count=1
        )
        self._cursor = resp[0] if resp and resp[0] else "0-0"
        entries = resp[1] if resp else []
        for eid, _ in entries:
            self.reclaimed += 1
            log.warning("reclaimed an entry from a silent consumer", extra={"entry_id": eid, "consumer": self.consumer})
        return [Entry(eid, fields, True) for eid, fields in entries]

    async def delivery_count(self, entry_id: str) -> int:
        info = await self.redis.xpending_range(
            self.stream, keys.CONSUMER_GROUP, min=entry_id, max=entry_id, count=1
        )
        return info[0]["times_delivered"] if info else 0

    @contextlib.asynccontextmanager
    async def keep_claim(self, entry_id: str) -> AsyncIterator[None]:
        """While the body runs, refresh our claim often enough that nobody reclaims it.
        A timer, not a task per job: most jobs end long before the first refresh is due."""
        loop = asyncio.get_running_loop()
        period = self.reclaim_idle_ms / 3000
        refresher: list[asyncio.Task] = []
        claim = _Claim()
        timer = loop.call_later(period, lambda: refresher.append(loop.create_task(self._refresh(entry_id, period, claim))))
        try:
            yield
        finally:
            # A flag the refresher checks, and never an await on it: redis-py (8.1, checked)
            # swallows a cancellation that lands inside a command (the XCLAIM just returns),
            # and a refresher awaited after its cancel looped on, holding the job's result
            # and keeping its entry claimed for ever (the chaos test's lost job).
            claim.held = False
            timer.cancel()
            for task in refresher:
                task.cancel()

    async def _refresh(self, entry_id: str, period: float, claim: "_Claim") -> None:
        while claim.held:
            try:
                await self.redis.xclaim(
                    self.stream, keys.CONSUMER_GROUP, self.consumer, 0, [entry_id], justid=True
                )
            except Exception as exc:  # noqa: BLE001 - a missed refresh must not kill the job
                log.warning("could not refresh claim", extra={"entry_id": entry_id, "error": str(exc)})
            if not claim.held:
                return
            await asyncio.sleep(period)  # a timer, not synchronisation


class _Claim:
    """Whether keep_claim's body still runs (its refresher stops at the next check)."""

    held = True
