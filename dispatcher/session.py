"""Sessions from the client's side: one interpreter on the fleet that keeps its globals
and workspace across calls (executor/sessions/host.py is the other side).

    with Client(url).session(idle_timeout=300, max_lifetime=3600) as s:
        s.run("x = 41")
        s.run("print(x + 1)").stdout        # '42\\n'
        Client(url).session(id=s.id)         # reattach from elsewhere

A call is validated like a job (same budgets, same files), travels on the session's own
stream, and returns the same Result. A call after the session ended raises SessionEnded
(closed, idle timeout, lifetime) or SessionLost (its executor or process died, a budget
forced a kill, a drain): never a fresh interpreter. A record that is missing (the pod's
lease lapsed) means lost only once it stayed missing for session_lost_grace_s. Sync and
async share everything here but the I/O.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from dispatcher import request
from dispatcher.errors import SessionEnded, SessionLost, WaitTimeout
from warmfleet.contract import keys
from warmfleet.contract.schema import Job, Result
from warmfleet.contract.sessions import CLOSE_ENTRY, SessionCall, SessionOpen, SessionRecord, SessionState

# The clients import this module (Client.session); it names them only in words, so the
# import graph has no circle: `client` is a dispatcher.client.Client or an AsyncClient.
SyncClient = AsyncClientT = Any

CLOSE_WAIT_S = 10.0
CLOSE_POLL_S = 0.02
MISSING_POLL_S = 0.2  # how often a call or attach looks again for a missing record

# Enqueue a call only while the session is open: one round trip, and a call never waits
# in the stream of a session that has ended. Returns the record when it is not open.
SUBMIT_CALL = """
local rec = redis.call('GET', KEYS[1])
if not rec then return {0, ''} end
if cjson.decode(rec)['state'] ~= 'open' then return {0, rec} end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'call', ARGV[1])
return {1, ''}
"""


def open_request(idle_timeout: float, max_lifetime: float, reply_to: str) -> tuple[str, dict]:
    for name, value in (("idle_timeout", idle_timeout), ("max_lifetime", max_lifetime)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    session_id = uuid.uuid4().hex
    return session_id, SessionOpen(session_id=session_id, idle_timeout=idle_timeout, max_lifetime=max_lifetime,
                                   reply_to=reply_to).entry()


def call_entry(job: Job) -> str:
    """A validated job, as a session call (its job id is the call id)."""
    return SessionCall.from_job(job).to_json()


def ended_error(session_id: str, raw: str | None) -> SessionEnded | None:
    """The error for a session whose record says it is over (or is gone), else None."""
    if raw is None:
        return SessionLost(session_id, "no such session: its executor died (its lease expired) or it ended long ago")
    rec = SessionRecord.from_json(raw)
    if rec.state is SessionState.OPEN:
        return None
    reason = rec.reason or "ended"
    return SessionLost(session_id, reason) if rec.lost else SessionEnded(session_id, reason)


class RecordWatch:
    """Whether a session's record says it is over. A record that says so is final at
    once; a missing one only once it has stayed missing for `grace_s`: the lease of a pod
    starved by a fork bomb lapses, and its renewal brings the record back. One watch per
    call or attach: a gap seen long ago says nothing about now."""

    def __init__(self, session_id: str, grace_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.session_id, self.grace_s, self.clock = session_id, grace_s, clock
        self.missing_since: float | None = None

    def check(self, raw: str | None) -> SessionEnded | None:
        """The error to raise, or None: open, or missing for less than the grace so far."""
        if raw is not None:
            self.missing_since = None
            return ended_error(self.session_id, raw)
        now = self.clock()
        if self.missing_since is None:
            self.missing_since = now
        if now - self.missing_since >= self.grace_s:
            return ended_error(self.session_id, None)
        return None


def _options(files: dict | None, timeout: float | None, cpu_time: float | None, memory_mb: int | None) -> dict:
    return {"timeout": timeout, "cpu_time": cpu_time, "memory_mb": memory_mb,
            "files": dict(files) if files is not None else None}


def _opened(session_id: str, result: Result) -> None:
    if not result.ok:
        raise SessionLost(session_id, f"the fleet could not open it: {result.error}")


class Session:
    """A session used from a sync Client. Not thread-safe, like the Client."""

    def __init__(self, client: "SyncClient", session_id: str, owned: bool) -> None:
        self.client, self.id, self.owned = client, session_id, owned
        self._ended: SessionEnded | None = None
        self._submit = client.redis.register_script(SUBMIT_CALL)

    @classmethod
    def open(cls, client: "SyncClient", idle_timeout: float, max_lifetime: float, open_timeout: float) -> "Session":
        client._subscribe()
        session_id, fields = open_request(idle_timeout, max_lifetime, client.channel)
        entry_id = client.redis.xadd(keys.session_opens(client.pool), fields)
        try:
            result = client.wait(session_id, timeout=open_timeout)
        except WaitTimeout:
            client.redis.xdel(keys.session_opens(client.pool), entry_id)
            raise WaitTimeout(session_id, open_timeout) from None
        _opened(session_id, result)
        return cls(client, session_id, owned=True)

    @classmethod
    def attach(cls, client: "SyncClient", session_id: str) -> "Session":
        watch, key = RecordWatch(session_id, client.settings.session_lost_grace_s), keys.session(client.pool, session_id)
        while (err := watch.check(raw := client.redis.get(key))) is None and raw is None:
            time.sleep(MISSING_POLL_S)  # poll with a deadline (the grace): a starved pod renews it late
        if err is not None:
            raise err
        return cls(client, session_id, owned=False)

    def run(self, code: str, *, files: dict | None = None, timeout: float | None = None,
            cpu_time: float | None = None, memory_mb: int | None = None) -> Result:
        """Run `code` in the session's globals and workspace; the same Result and budgets
        as Client.run (None: the fleet's defaults)."""
        if self._ended is not None:
            raise self._ended
        c = self.client
        c.limits()
        job = c.core.build(code, _options(files, timeout, cpu_time, memory_mb))
        c._subscribe()
        watch = RecordWatch(self.id, c.settings.session_lost_grace_s)
        while True:
            ok, rec = self._submit(keys=[keys.session(c.pool, self.id), keys.session_calls(c.pool, self.id)],
                                   args=[call_entry(job)])
            if ok:
                return self._wait(job.job_id, watch)
            if (err := watch.check(rec or None)) is not None:
                raise self._end(err)
            time.sleep(MISSING_POLL_S)  # poll with a deadline (the grace): a starved pod renews it late

    def _wait(self, call_id: str, watch: RecordWatch) -> Result:
        c = self.client
        next_check = time.monotonic() + c.settings.recheck_s
        while (result := c.core.take(call_id)) is None:
            now = time.monotonic()
            if now >= next_check:
                raw, rec = c.redis.mget([keys.result(c.pool, call_id), keys.session(c.pool, self.id)])
                if raw is not None:
                    return request.parse_result(raw)
                if (err := watch.check(rec)) is not None:
                    # It may have answered just before it ended: look once more.
                    raw = c.redis.get(keys.result(c.pool, call_id))
                    if raw is not None:
                        return request.parse_result(raw)
                    raise self._end(err)
                next_check = now + c.settings.recheck_s
                continue
            c._pump(next_check - now)
        return result

    def _end(self, err: SessionEnded | None) -> SessionEnded:
        self._ended = err or SessionEnded(self.id, "ended")
        return self._ended

    def close(self, wait: float = CLOSE_WAIT_S) -> None:
        """End the session (after the calls already sent) and wait up to `wait` seconds
        until its pod has cleaned it up; later calls raise SessionEnded."""
        if self._ended is None:
            c = self.client
            c.redis.xadd(keys.session_calls(c.pool, self.id), CLOSE_ENTRY)
            self._ended = SessionEnded(self.id, "closed")
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and ended_error(self.id, c.redis.get(keys.session(c.pool, self.id))) is None:
                time.sleep(CLOSE_POLL_S)  # poll with a deadline: the pod records the end

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.owned:  # a reattached session stays open for whoever opened it
            self.close()


class AsyncSession:
    """A session used from an AsyncClient: `async with client.session() as s`."""

    def __init__(self, client: "AsyncClientT", session_id: str | None, owned: bool,
                 open_args: tuple[float, float, float] | None = None) -> None:
        self.client, self.id, self.owned = client, session_id or "", owned
        self._open_args = open_args
        self._ended: SessionEnded | None = None
        self._submit = client.redis.register_script(SUBMIT_CALL)

    async def open(self) -> "AsyncSession":
        c = self.client
        if self._open_args is None:  # reattach
            watch, key = RecordWatch(self.id, c.settings.session_lost_grace_s), keys.session(c.pool, self.id)
            while (err := watch.check(raw := await c.redis.get(key))) is None and raw is None:
                await asyncio.sleep(MISSING_POLL_S)  # poll with a deadline (the grace)
            if err is not None:
                raise err
            return self
        idle_timeout, max_lifetime, open_timeout = self._open_args
        self._open_args = None
        await c._ensure_listener()
        self.id, fields = open_request(idle_timeout, max_lifetime, c.channel)
        fut = c._waiters.setdefault(self.id, asyncio.get_running_loop().create_future())
        entry_id = await c.redis.xadd(keys.session_opens(c.pool), fields)
        try:
            result = c.core.take(self.id) or await asyncio.wait_for(asyncio.shield(fut), open_timeout)
        except TimeoutError:
            await c.redis.xdel(keys.session_opens(c.pool), entry_id)
            raise WaitTimeout(self.id, open_timeout) from None
        finally:
            c._waiters.pop(self.id, None)
        _opened(self.id, result)
        return self

    async def run(self, code: str, *, files: dict | None = None, timeout: float | None = None,
                  cpu_time: float | None = None, memory_mb: int | None = None) -> Result:
        if self._ended is not None:
            raise self._ended
        c = self.client
        await c.limits()
        job = c.core.build(code, _options(files, timeout, cpu_time, memory_mb))
        await c._ensure_listener()
        fut = c._waiters.setdefault(job.job_id, asyncio.get_running_loop().create_future())
        watch = RecordWatch(self.id, c.settings.session_lost_grace_s)
        try:
            while True:
                ok, rec = await self._submit(keys=[keys.session(c.pool, self.id), keys.session_calls(c.pool, self.id)],
                                             args=[call_entry(job)])
                if ok:
                    break
                if (err := watch.check(rec or None)) is not None:
                    raise self._end(err)
                await asyncio.sleep(MISSING_POLL_S)  # poll with a deadline (the grace)
            while True:
                if (early := c.core.take(job.job_id)) is not None:
                    return early
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), c.settings.recheck_s)
                except TimeoutError:
                    pass
                raw, rec = await c.redis.mget([keys.result(c.pool, job.job_id), keys.session(c.pool, self.id)])
                if raw is not None:
                    return request.parse_result(raw)
                if (err := watch.check(rec)) is not None:
                    raw = await c.redis.get(keys.result(c.pool, job.job_id))
                    if raw is not None:
                        return request.parse_result(raw)
                    raise self._end(err)
        finally:
            c._waiters.pop(job.job_id, None)

    def _end(self, err: SessionEnded | None) -> SessionEnded:
        self._ended = err or SessionEnded(self.id, "ended")
        return self._ended

    async def close(self, wait: float = CLOSE_WAIT_S) -> None:
        if self._ended is None:
            c = self.client
            await c.redis.xadd(keys.session_calls(c.pool, self.id), CLOSE_ENTRY)
            self._ended = SessionEnded(self.id, "closed")
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and ended_error(
                self.id, await c.redis.get(keys.session(c.pool, self.id))
            ) is None:
                await asyncio.sleep(CLOSE_POLL_S)  # poll with a deadline: the pod records the end

    def __await__(self):
        return self.open().__await__()

    async def __aenter__(self) -> "AsyncSession":
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        if self.owned:
            await self.close()
