"""The asyncio client: the same methods as Client, awaitable. Every decision is
ClientCore's (dispatcher/core.py); this file is the asyncio I/O around it.

One AsyncClient holds a bounded connection pool plus one pub/sub connection, whatever
the number of jobs in flight; each waiting job is a future resolved by the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from typing import Unpack

import redis.exceptions

from dispatcher import request
from dispatcher.core import ClientCore, JobOptions
from dispatcher.errors import SessionEnded, WaitTimeout
from dispatcher.session import (
    CLOSE_POLL_S, CLOSE_WAIT_S, MISSING_POLL_S, SUBMIT_CALL, RecordWatch, check_context, ended_error, options,
)
from warmfleet.plumbing import redis_connect, redis_retry, tracing
from warmfleet.contract.schema import FleetLimits, Result

RECHECK_BATCH = 500  # result keys per MGET when re-reading many


class AsyncClient:
    def __init__(
        self, redis_url: str | None = None, *, pool: str | None = None, redis: "redis.asyncio.Redis | None" = None
    ) -> None:
        """As Client; `redis`: an open redis.asyncio client (decode_responses=True)."""
        self.core = core = ClientCore(redis_url, pool, connection_given=redis is not None)
        self.settings, self.pool, self.url, self.client_id, self.channel = (
            core.settings, core.pool, core.url, core.client_id, core.channel
        )
        if redis is None:
            redis = redis_connect.connect_async(
                self.url, blocking_pool=True, retry=redis_retry.async_retry(), **core.connection_options()
            )
        else:
            core.check_given(redis)
        self.redis = redis
        self._waiters: dict[str, asyncio.Future[Result]] = {}
        self._listener: asyncio.Task | None = None
        self._subscribed: asyncio.Event | None = None
        # close() stops the listener by this flag as well as by cancelling it: a cancel that
        # lands while a command completes can be swallowed (seen with keep_claim's refresher)
        self._closing = False
        self._submit_idempotent = self.redis.register_script(request.IDEMPOTENT_SUBMIT)
        self._readd = self.redis.register_script(request.READD_LOST)
        self._submit_call = self.redis.register_script(SUBMIT_CALL)

    async def limits(self) -> FleetLimits:
        return self.core.limits or self.core.set_limits(await self.redis.get(self.core.limits_key))

    async def submit(
        self, code: str, *, idempotency_key: str | None = None, _stream: bool = False, **options: Unpack[JobOptions]
    ) -> str:
        await self.limits()
        with tracing.submit_span(self.pool) as trace_context:
            job = self.core.build(code, options, stream=_stream, trace=trace_context)
            await self._ensure_listener()
            entry = self.core.entry(job)
            if idempotency_key is None:
                return self.core.enqueued(job, job.job_id, await self.redis.xadd(self.core.stream, entry), entry)
            keys_, args = self.core.idempotent_call(job, idempotency_key)
            job_id, entry_id = self.core.idempotent_reply(await self._submit_idempotent(keys=keys_, args=args))
            return self.core.enqueued(job, job_id, entry_id, entry)

    async def wait(self, job_id: str, timeout: float | None = None, *, watch: RecordWatch | None = None) -> Result:
        """Like Client.wait; `watch`: the job is a session call (AsyncSession.run passes it)."""
        await self._ensure_listener()
        if (result := self.core.take(job_id)) is not None:
            self._waiters.pop(job_id, None)  # one a timed-out wait left behind
            return result
        fut = self._waiters.get(job_id)
        if fut is None:
            look_first = self.core.look_first(job_id)
            fut = self._waiters[job_id] = asyncio.get_running_loop().create_future()
            if look_first:  # a job submitted elsewhere may have finished before we subscribed
                await self._recheck([job_id])
        try:
            if watch is None:  # the listener's rechecks cover every waiter
                return await asyncio.wait_for(asyncio.shield(fut), timeout)
            return await self._wait_watching(job_id, fut, timeout, watch)
        except TimeoutError:
            raise WaitTimeout(job_id, timeout or 0.0) from None
        finally:
            if fut.done() or watch is not None:
                self._waiters.pop(job_id, None)
                self.core.take(job_id)

    async def _wait_watching(self, job_id: str, fut: asyncio.Future[Result], timeout: float | None,
                             watch: RecordWatch) -> Result:
        """A session call's wait: every recheck_s, also read its session's record."""
        deadline = self.core.deadline(timeout)
        while True:
            left = deadline.left(time.monotonic())
            step = self.settings.recheck_s if left is None else max(0.0, min(self.settings.recheck_s, left))
            try:
                return await asyncio.wait_for(asyncio.shield(fut), step)
            except TimeoutError:
                deadline.check(job_id, time.monotonic())
            ended = self.core.on_recheck(job_id, await self.redis.mget(self.core.recheck_keys(job_id, watch)), watch)
            if (result := self.core.take(job_id)) is not None:
                return result
            if ended is not None:
                self.core.on_stored([job_id], [await self.redis.get(self.core.result_key(job_id))])
                if (result := self.core.take(job_id)) is not None:
                    return result
                raise ended

    async def run(self, code: str, **kwargs) -> Result:
        return await self.wait(await self.submit(code, **kwargs))

    async def stream(self, code: str, **kwargs) -> AsyncIterator[request.Chunk | Result]:
        """Async twin of Client.stream: Chunks while the job runs, then its Result."""
        job_id = await self.submit(code, _stream=True, **kwargs)
        out = self.core.output(job_id)
        while True:
            resp = await self.redis.xread({out.key: out.last}, count=out.read_count, block=out.block_ms)
            chunks, ended = out.feed(resp)
            for chunk in chunks:
                yield chunk
            if ended:
                yield await self.wait(job_id)
                return
            if not resp and await self.redis.exists(self.core.result_key(job_id)):
                # Finished without an end marker (rejected, or failed by the fleet): drain, then answer.
                for chunk in out.feed(await self.redis.xread({out.key: out.last}, count=out.drain_count))[0]:
                    yield chunk
                yield await self.wait(job_id)
                return

    async def map(self, codes: Iterable[str], **kwargs) -> list[Result]:
        await self.limits()
        codes = list(codes)
        with tracing.submit_span(self.pool, len(codes)) as trace_context:
            jobs = self.core.build_many(codes, kwargs, trace_context)
            await self._ensure_listener()
            entries = [self.core.entry(job) for job in jobs]
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    pipe.xadd(self.core.stream, entry)
                entry_ids = await pipe.execute()
        job_ids = [self.core.enqueued(job, job.job_id, e_id, e) for job, e_id, e in zip(jobs, entry_ids, entries)]
        return list(await asyncio.gather(*(self.wait(job_id) for job_id in job_ids)))

    def session(
        self, id: str | None = None, *, idle_timeout: float = 300.0, max_lifetime: float = 3600.0,
        open_timeout: float = 60.0,
    ) -> "AsyncSession":
        """Like Client.session: `async with client.session() as s`, or `s = await client.session()`."""
        if id is not None:
            return AsyncSession(self, id, owned=False)
        return AsyncSession(self, None, owned=True, open_args=(idle_timeout, max_lifetime, open_timeout))

    async def open_session(self, idle_timeout: float, max_lifetime: float, open_timeout: float) -> str:
        """Like Client.open_session."""
        await self._ensure_listener()
        session_id, opens, fields = self.core.session_open(idle_timeout, max_lifetime)
        entry_id = await self.redis.xadd(opens, fields)
        try:
            result = await self.wait(session_id, timeout=open_timeout)
        except WaitTimeout:
            await self.redis.xdel(opens, entry_id)  # no pod took it: nobody will
            raise WaitTimeout(session_id, open_timeout) from None
        return self.core.opened(session_id, result)

    async def submit_call(self, session_id: str, code: str, options: JobOptions, watch: RecordWatch, *,
                          context: str = "", stream: bool = False) -> str:
        """Like Client.submit_call; `stream`: its output is published as it is written."""
        await self.limits()
        job = self.core.build(code, options, stream=stream)
        await self._ensure_listener()
        keys_, args = self.core.session_call(session_id, job, context)
        while True:
            ok, rec = await self._submit_call(keys=keys_, args=args)
            if ok:
                return self.core.called(job)
            if (err := watch.check(rec or None)) is not None:
                raise err
            await asyncio.sleep(MISSING_POLL_S)  # poll with a deadline (the grace)

    async def session_record(self, session_id: str) -> str | None:
        return await self.redis.get(self.core.record_key(session_id))

    async def close_session(self, session_id: str) -> None:
        await self.redis.xadd(*self.core.close_entry(session_id))

    async def stop_call(self, session_id: str, call_id: str) -> None:
        await self.redis.xadd(*self.core.stop_call(session_id, call_id))

    # -- plumbing ---------------------------------------------------------------------
    async def _ensure_listener(self) -> None:
        if self._listener is None:
            self._subscribed = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(), name=f"warmfleet-listener-{self.client_id}")
        await self._subscribed.wait()

    async def _listen(self) -> None:
        backoff = 0.05
        while not self._closing:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while not self._closing:
                    msg = await pubsub.get_message(timeout=self.settings.recheck_s)
                    if msg is None:
                        await self._recheck(list(self._waiters))
                    elif msg["type"] == "subscribe":
                        assert self._subscribed is not None
                        self._subscribed.set()
                        await self._recheck(list(self._waiters))  # anything finished while we were away
                        if self.core.on_subscribed():  # we were away: a failover may have lost entries
                            await self._readd_lost()
                        backoff = 0.05
                    elif msg["type"] == "message":
                        self._deliver(self.core.on_message(msg["data"]))
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                await asyncio.sleep(backoff)  # reconnect backoff
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _readd_lost(self) -> None:
        for keys_, args in self.core.readd_calls():
            self.core.on_readded(await self._readd(keys=keys_, args=args))

    def _deliver(self, result: Result) -> None:
        """Hand an arrived result to its waiter; without one it stays in core.arrived."""
        fut = self._waiters.get(result.job_id)
        if fut is not None and not fut.done():
            fut.set_result(result)

    async def _recheck(self, job_ids: list[str]) -> None:
        pending = [j for j in job_ids if j in self._waiters and not self._waiters[j].done()]
        for start in range(0, len(pending), RECHECK_BATCH):
            chunk = pending[start : start + RECHECK_BATCH]
            self.core.on_stored(chunk, await self.redis.mget([self.core.result_key(j) for j in chunk]))
            for job_id in chunk:
                if job_id in self.core.arrived:
                    self._deliver(self.core.arrived[job_id])

    async def close(self) -> None:
        self._closing = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self.redis.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncSession:
    """A session used from an AsyncClient: `async with client.session() as s`. Like
    Session, every command and wait is the client's."""

    def __init__(self, client: "AsyncClient", session_id: str | None, owned: bool,
                 open_args: tuple[float, float, float] | None = None) -> None:
        self.client, self.id, self.owned = client, session_id or "", owned
        self.open_args = open_args
        self.ended: SessionEnded | None = None

    async def open(self) -> "AsyncSession":
        c = self.client
        if self.open_args is None:  # reattach
            watch = c.core.record_watch(self.id)
            while (err := watch.check(raw := await c.session_record(self.id))) is None and raw is None:
                await asyncio.sleep(MISSING_POLL_S)  # poll with a deadline (the grace)
            if err is not None:
                raise err
            return self
        idle_timeout, max_lifetime, open_timeout = self.open_args
        self.open_args = None
        self.id = await c.open_session(idle_timeout, max_lifetime, open_timeout)
        return self

    async def run(self, code: str, *, files: dict | None = None, timeout: float | None = None,
                  cpu_time: float | None = None, memory_mb: int | None = None,
                  env: dict[str, str] | None = None, language: str | None = None,
                  context: str | None = None) -> Result:
        """Run `code` in the session. `env`: variables set for this call only; `language`:
        "python" (default) or "bash" (a bash process in the workspace); `context`: run in
        that context's own globals (made at its first call; same workspace, process and
        budgets), None the session's own."""
        if self.ended is not None:
            raise self.ended
        watch = self.client.core.record_watch(self.id)
        try:
            call_id = await self.client.submit_call(
                self.id, code, options(files, timeout, cpu_time, memory_mb, env, language), watch,
                context=check_context(context))
            return await self.client.wait(call_id, watch=watch)
        except SessionEnded as err:
            self.ended = err
            raise

    async def stream(self, code: str, *, files: dict | None = None, timeout: float | None = None,
                     cpu_time: float | None = None, memory_mb: int | None = None, env: dict[str, str] | None = None,
                     language: str | None = None, context: str | None = None) -> AsyncIterator[request.Chunk | Result]:
        """Like run, streamed as AsyncClient.stream streams a job: Chunks as the call
        writes them, then its Result. Leaving the loop early (break, cancel) stops the
        call (it ends with status error); the session goes on."""
        if self.ended is not None:
            raise self.ended
        c = self.client
        watch = c.core.record_watch(self.id)
        finished = False
        call_id = ""
        try:
            call_id = await c.submit_call(self.id, code, options(files, timeout, cpu_time, memory_mb, env, language), watch,
                                          context=check_context(context), stream=True)
            out = c.core.output(call_id)
            while True:
                resp = await c.redis.xread({out.key: out.last}, count=out.read_count, block=out.block_ms)
                chunks, ended = out.feed(resp)
                for chunk in chunks:
                    yield chunk
                if not ended:
                    if resp:
                        continue
                    if not await c.redis.exists(c.core.result_key(call_id)):
                        if (err := watch.check(await c.session_record(self.id))) is not None:
                            raise err
                        continue
                    # answered without its end marker (the session ended): take what is there
                    for chunk in out.feed(await c.redis.xread({out.key: out.last}, count=out.drain_count))[0]:
                        yield chunk
                result = await c.wait(call_id, watch=watch)
                finished = True
                yield result
                return
        except SessionEnded as err:
            self.ended = err
            raise
        finally:
            if call_id and not finished:
                with contextlib.suppress(Exception):
                    await asyncio.shield(c.stop_call(self.id, call_id))

    async def stop(self, call_id: str) -> None:
        """Interrupt one call of this session (running or still queued); the session goes on."""
        await self.client.stop_call(self.id, call_id)

    async def close(self, wait: float = CLOSE_WAIT_S) -> None:
        if self.ended is None:
            c = self.client
            await c.close_session(self.id)
            self.ended = SessionEnded(self.id, "closed")
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and ended_error(self.id, await c.session_record(self.id)) is None:
                await asyncio.sleep(CLOSE_POLL_S)  # poll with a deadline: the pod records the end

    def __await__(self):
        return self.open().__await__()

    async def __aenter__(self) -> "AsyncSession":
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        if self.owned:
            await self.close()
