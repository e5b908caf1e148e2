"""Session opens: read from the pool-wide stream keys.session_opens through the consumer
group by a pod with room, and answered exactly once, even when the pod that read one dies.

Delivery is the jobs' own (executor/delivery.py EntrySource): this pod's pending opens
first, then now and then one open that another pod read and left unanswered for
session_open_reclaim_s (XAUTOCLAIM: that pod died), then new opens. While this pod opens
one it keeps its claim fresh, so a live pod's open is not taken from it.

A reclaimed open may be half done (the dead pod wrote the session's record, never the
answer), and in a pod starved past its claim two pods may hold one open. So Redis decides:
- claim: the session's record is written NX as "opening", with the session lease, before
  the process starts. A record already there is another pod's (opening or opened it): the
  entry stays pending and comes back after the idle time, by when that pod has answered
  or died and its record's lease has lapsed. An answer already stored: acked, done.
- answer: the record turns "open", the Result is stored and the entry acked in one script,
  only while the record is still this pod's "opening" one and no answer exists; a pod that
  lost the race ends the process it started.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import redis.exceptions

from executor import store
from executor.delivery import Entry, EntrySource
from executor.sessions.handle import SessionDied
from warmfleet.contract import keys
from warmfleet.contract import lua
from warmfleet.contract.schema import Result, Status
from warmfleet.contract.sessions import SessionOpen, SessionRecord, SessionState

log = logging.getLogger("warmfleet.sessions")

_CLAIM = lua.script("session_open_claim")  # warmfleet/contract/lua/session_open_claim.lua
_ANSWER = lua.script("session_open_answer")  # warmfleet/contract/lua/session_open_answer.lua


class Host(Protocol):
    """What opening needs of the pod's SessionHost (executor/sessions/host.py), named here so
    the two modules do not import each other."""

    settings: Any  # ExecutorSettings
    redis: Any
    sup: Any  # PodState
    pool: str
    pod_id: str
    consumer: str
    running: bool
    has_room: asyncio.Event
    lease_ms: int

    def give_back(self, index: int) -> None: ...
    async def session_for(self, sid: str, idle: float, life: float, reply_to: str | None) -> tuple[Any, bool]: ...
    async def start(self, session: Any) -> None: ...
    async def discard(self, session: Any) -> None: ...
    async def admit(self, session: Any) -> None: ...


class SessionOpens:
    def __init__(self, host: Host) -> None:
        self.host = host
        s = host.settings
        self.stream = keys.session_opens(host.pool)
        self.source = EntrySource(host.redis, host.pool, host.consumer, block_ms=s.block_ms,
                                  reclaim_idle_s=s.session_open_reclaim_s, stream=self.stream)
        self._claim = host.redis.register_script(_CLAIM)
        self._answer = host.redis.register_script(_ANSWER)

    async def run(self) -> None:
        host = self.host
        while host.running and not host.sup.draining.is_set():
            await host.has_room.wait()
            try:
                for entry in await self.source.next():
                    async with self.source.keep_claim(entry.entry_id):
                        await self.open(entry)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("redis unavailable; retrying", extra={"error": str(exc)})
                await host.sup.wait_draining(1.0)

    async def open(self, entry: Entry) -> None:
        host, fields, results = self.host, entry.fields, self.host.sup.store
        if not fields:  # deleted while pending (the client gave up): nobody to answer
            await results.ack_only(entry.entry_id, self.stream)
            return
        try:
            req = SessionOpen.from_entry(fields)
            sid, reply_to = req.session_id, req.reply_to
            idle = min(req.idle_timeout, host.settings.max_session_idle_s)
            life = min(req.max_lifetime, host.settings.max_session_lifetime_s)
            if not (idle > 0 and life > 0):
                raise ValueError("idle_timeout and max_lifetime must be positive")
        except ValueError as exc:
            await results.record_dead_letter(entry.entry_id, f"malformed session open: {exc}", fields=fields)
            await results.ack_only(entry.entry_id, self.stream)
            return
        await self._fault("after_read")
        session, started = await host.session_for(sid, idle, life, reply_to)
        record_key = keys.session(host.pool, sid)
        claimed = await self._claim(keys=[record_key, keys.result(host.pool, sid)],
                                    args=[session.record(host.pod_id, SessionState.OPENING), host.lease_ms])
        if claimed != "claimed":
            if started:
                await host.discard(session)  # a spare has run nothing: reset, its index comes back
            else:
                host.give_back(session.index)
            await self._not_ours(entry, sid, claimed, reply_to)
            return
        try:
            if not started:
                await host.start(session)
        except (SessionDied, OSError) as exc:
            log.error("session failed to start", extra={"session_id": sid, "error": str(exc)})
            why = f"could not start: {exc}"
            await self._answer_open(entry, session, session.record(host.pod_id, SessionState.ENDED, f"lost: {why}", True),
                                    host.settings.session_ended_ttl_s * 1000,
                                    Result(job_id=sid, status=Status.FAILED, executor=host.consumer, error=why))
            return
        await self._fault("before_answer")
        if not await self._answer_open(entry, session, session.record(host.pod_id), host.lease_ms,
                                       Result(job_id=sid, status=Status.OK, executor=host.consumer)):
            log.warning("session open answered by another pod; ending ours", extra={"session_id": sid})
            await host.discard(session)
            return
        await host.admit(session)

    async def _answer_open(self, entry: Entry, session, record: str, ttl_ms: int, result: Result) -> bool:
        host = self.host
        done = await self._answer(
            keys=[keys.session(host.pool, session.id), keys.result(host.pool, session.id), self.stream],
            args=[host.pod_id, record, int(ttl_ms), result.to_json(), host.settings.result_ttl_s, keys.CONSUMER_GROUP,
                  entry.entry_id, store.reply_channel(host.pool, session.reply_to)],
        )
        return bool(done)

    async def _not_ours(self, entry: Entry, sid: str, claimed: str, reply_to: str | None) -> None:
        results = self.host.sup.store
        if claimed == "answered":  # a second delivery of an open answered before
            await results.ack_only(entry.entry_id, self.stream)
            return
        rec = SessionRecord.from_json(claimed)
        if rec.state is SessionState.ENDED:  # nothing left to open, and nobody answered: say so
            result = Result(job_id=sid, status=Status.FAILED, executor=self.host.consumer,
                            error=f"the session ended before its open was answered: {rec.reason}")
            await results.store_and_ack(entry.entry_id, result, reply_to, stream=self.stream)
            return
        # Another pod holds it: it answers, or it died and its record lapses; the entry
        # stays pending and is reclaimed again after the idle time.
        log.info("session open held by another pod", extra={"session_id": sid, "pod": rec.pod})

    async def _fault(self, point: str) -> None:
        if self.host.settings.session_open_fault == point:
            log.warning("test fault: this open is never answered", extra={"point": point})
            await asyncio.Event().wait()
