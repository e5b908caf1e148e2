"""The asyncio client: the same methods as Client, awaitable.

One AsyncClient holds a bounded connection pool plus one pub/sub connection, whatever
the number of jobs in flight; each waiting job is a future resolved by the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping

import redis.asyncio as aioredis
import redis.exceptions

from dispatcher import request
from dispatcher.errors import WaitTimeout
from dispatcher.settings import ClientSettings
from warmfleet import keys, redis_retry
from warmfleet.schema import FleetLimits, Result


class AsyncClient:
    def __init__(self, redis_url: str | None = None, *, pool: str = "default") -> None:
        self.settings = ClientSettings()
        self.pool = keys.check_pool(pool)
        self.url = request.resolve_url(redis_url, self.settings)
        self.client_id = request.new_client_id()
        self.redis = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                self.url,
                decode_responses=True,
                max_connections=self.settings.max_connections,
                timeout=None,
                client_name=request.connection_name(self.client_id),
                retry=redis_retry.async_retry(),
                retry_on_error=redis_retry.RETRY_ON,
            )
        )
        self.channel = keys.reply_channel(self.pool, self.client_id)
        self._waiters: dict[str, asyncio.Future[Result]] = {}
        self._arrived: dict[str, Result] = {}
        self._listener: asyncio.Task | None = None
        self._subscribed: asyncio.Event | None = None
        self._limits: FleetLimits | None = None
        self._submit_idempotent = self.redis.register_script(request.IDEMPOTENT_SUBMIT)

    async def limits(self) -> FleetLimits:
        if self._limits is None:
            self._limits = request.parse_limits(await self.redis.get(keys.limits(self.pool)))
        return self._limits

    async def submit(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float = 30.0,
        cpu_time: float = 10.0,
        memory_mb: int = 256,
        idempotency_key: str | None = None,
        files: Mapping[str, bytes | str] | None = None,
        _stream: bool = False,
    ) -> str:
        job = request.build_job(
            code, limits=await self.limits(), reply_to=self.channel,
            language=language, timeout=timeout, cpu_time=cpu_time, memory_mb=memory_mb,
            files=dict(files) if files is not None else None, stream=_stream,
        )
        await self._ensure_listener()
        if idempotency_key is None:
            await self.redis.xadd(keys.stream(self.pool), {"job": job.to_json()})
            return job.job_id
        key = request.check_idempotency_key(idempotency_key)
        return await self._submit_idempotent(
            keys=[keys.idempotency(self.pool, key), keys.stream(self.pool)],
            args=[job.job_id, self.settings.idempotency_ttl_s, job.to_json()],
        )

    async def wait(self, job_id: str, timeout: float | None = None) -> Result:
        await self._ensure_listener()
        if job_id in self._arrived:
            return self._arrived.pop(job_id)
        fut = self._waiters.get(job_id)
        if fut is None:
            fut = self._waiters[job_id] = asyncio.get_running_loop().create_future()
            await self._recheck([job_id])
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            raise WaitTimeout(job_id, timeout or 0.0) from None
        finally:
            if fut.done():
                self._waiters.pop(job_id, None)

    async def run(self, code: str, **kwargs) -> Result:
        # Listening before the entry exists: the answer cannot slip past us, so no MGET
        # round trip before waiting (wait() needs one for ids submitted elsewhere).
        await self._ensure_listener()
        job_id = await self.submit(code, **kwargs)
        if job_id in self._arrived:
            return self._arrived.pop(job_id)
        fut = self._waiters.setdefault(job_id, asyncio.get_running_loop().create_future())
        try:
            return await fut
        finally:
            self._waiters.pop(job_id, None)

    async def stream(self, code: str, **kwargs) -> AsyncIterator[request.Chunk | Result]:
        """Async twin of Client.stream: Chunks while the job runs, then its Result."""
        job_id = await self.submit(code, _stream=True, **kwargs)
        key = keys.output(self.pool, job_id)
        last = "0-0"
        while True:
            resp = await self.redis.xread({key: last}, count=100, block=int(self.settings.recheck_s * 1000))
            for last, chunk in request.chunks_in(resp):
                if chunk is None:  # the end marker
                    yield await self.wait(job_id)
                    return
                yield chunk
            if not resp and await self.redis.exists(keys.result(self.pool, job_id)):
                # Finished without an end marker (rejected, or failed by the fleet): drain, then answer.
                for _, chunk in request.chunks_in(await self.redis.xread({key: last}, count=10_000)):
                    if chunk is not None:
                        yield chunk
                yield await self.wait(job_id)
                return

    async def map(self, codes: Iterable[str], **kwargs) -> list[Result]:
        if "idempotency_key" in kwargs:
            raise TypeError("map() takes no idempotency_key: submit() each job with its own key")
        limits = await self.limits()
        jobs = [request.build_job(code, limits=limits, reply_to=self.channel, **kwargs) for code in codes]
        await self._ensure_listener()
        for job in jobs:  # register before enqueueing: a fast result must find its future
            self._waiters.setdefault(job.job_id, asyncio.get_running_loop().create_future())
        async with self.redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.xadd(keys.stream(self.pool), {"job": job.to_json()})
            await pipe.execute()
        return list(await asyncio.gather(*(self.wait(job.job_id) for job in jobs)))

    # -- plumbing ---------------------------------------------------------------------
    async def _ensure_listener(self) -> None:
        if self._listener is None:
            self._subscribed = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(), name=f"warmfleet-listener-{self.client_id}")
        await self._subscribed.wait()

    async def _listen(self) -> None:
        backoff = 0.05
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    msg = await pubsub.get_message(timeout=self.settings.recheck_s)
                    if msg is None:
                        await self._recheck(list(self._waiters))
                    elif msg["type"] == "subscribe":
                        assert self._subscribed is not None
                        self._subscribed.set()
                        await self._recheck(list(self._waiters))  # anything finished while we were away
                        backoff = 0.05
                    elif msg["type"] == "message":
                        self._deliver(request.parse_result(msg["data"]))
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                await asyncio.sleep(backoff)  # reconnect backoff
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _deliver(self, result: Result) -> None:
        fut = self._waiters.get(result.job_id)
        if fut is None:
            self._arrived[result.job_id] = result
        elif not fut.done():
            fut.set_result(result)

    async def _recheck(self, job_ids: list[str]) -> None:
        pending = [j for j in job_ids if j in self._waiters and not self._waiters[j].done()]
        for start in range(0, len(pending), 500):
            chunk = pending[start : start + 500]
            raws = await self.redis.mget([keys.result(self.pool, j) for j in chunk])
            for raw in raws:
                if raw is not None:
                    self._deliver(request.parse_result(raw))

    async def close(self) -> None:
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
