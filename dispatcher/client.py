"""The synchronous client: submit code to a pool, wait for its Result."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping

import redis

from dispatcher import request
from dispatcher.errors import InvalidJob, WaitTimeout
from dispatcher.settings import ClientSettings
from warmfleet import keys, redis_retry
from warmfleet.schema import FleetLimits, Result


class Client:
    """Submit jobs and wait for results. Not thread-safe: use one per thread.

    Results are pushed to this client over pub/sub (one connection, whatever the
    number of jobs in flight); the stored result is the source of truth.
    """

    def __init__(self, redis_url: str | None = None, *, pool: str = "default") -> None:
        self.settings = ClientSettings()
        self.pool = keys.check_pool(pool)
        self.url = request.resolve_url(redis_url, self.settings)
        self.client_id = request.new_client_id()
        self.redis = redis.Redis.from_url(
            self.url,
            decode_responses=True,
            max_connections=self.settings.max_connections,
            client_name=request.connection_name(self.client_id),
            retry=redis_retry.sync_retry(),
            retry_on_error=redis_retry.RETRY_ON,
        )
        self.channel = keys.reply_channel(self.pool, self.client_id)
        self._pubsub: redis.client.PubSub | None = None
        self._arrived: dict[str, Result] = {}
        self._limits: FleetLimits | None = None
        self._submit_idempotent = self.redis.register_script(request.IDEMPOTENT_SUBMIT)

    # -- submitting -------------------------------------------------------------------
    def limits(self) -> FleetLimits:
        if self._limits is None:
            self._limits = request.parse_limits(self.redis.get(keys.limits(self.pool)))
        return self._limits

    def submit(
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
        """Enqueue one job and return its id. Raises InvalidJob before enqueueing anything.

        `files` are placed in the job's workspace before it runs; files the job writes
        under out/ come back in Result.files (see Result.file(name)).
        """
        job = request.build_job(
            code, limits=self.limits(), reply_to=self.channel,
            language=language, timeout=timeout, cpu_time=cpu_time, memory_mb=memory_mb,
            files=dict(files) if files is not None else None, stream=_stream,
        )
        self._subscribe()
        if idempotency_key is None:
            self.redis.xadd(keys.stream(self.pool), {"job": job.to_json()})
            return job.job_id
        key = request.check_idempotency_key(idempotency_key)
        return self._submit_idempotent(
            keys=[keys.idempotency(self.pool, key), keys.stream(self.pool)],
            args=[job.job_id, self.settings.idempotency_ttl_s, job.to_json()],
        )

    # -- waiting ----------------------------------------------------------------------
    def wait(self, job_id: str, timeout: float | None = None) -> Result:
        """Block until the job's result exists. Raises WaitTimeout after `timeout` seconds."""
        return self._wait(job_id, timeout, check_first=True)

    def _wait(self, job_id: str, timeout: float | None, check_first: bool) -> Result:
        self._subscribe()
        deadline = None if timeout is None else time.monotonic() + timeout
        # A job submitted elsewhere may have finished before we subscribed: look first.
        next_check = time.monotonic() + (0.0 if check_first else self.settings.recheck_s)
        outage_since: float | None = None
        while job_id not in self._arrived:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise WaitTimeout(job_id, timeout or 0.0)
            try:
                if now >= next_check:  # safety net for a lost notification
                    self._recheck([job_id])
                    next_check = now + self.settings.recheck_s
                    continue
                self._pump(min(next_check, deadline or next_check) - now)
                outage_since = None
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                outage_since = outage_since or now
                if now - outage_since > self.settings.outage_s:
                    raise ConnectionError(f"Redis at {self.url} unreachable for {self.settings.outage_s} s: {exc}") from exc
                time.sleep(min(1.0, self.settings.recheck_s))  # reconnect backoff
        return self._arrived.pop(job_id)

    def run(self, code: str, **kwargs) -> Result:
        """Submit and wait. `timeout` is the job's wall clock; the wait allows for queueing."""
        # submit() subscribes before the entry exists, so the answer cannot slip past us:
        # no MGET round trip before waiting (the periodic recheck stays as a safety net).
        return self._wait(self.submit(code, **kwargs), None, check_first=False)

    def stream(self, code: str, **kwargs) -> Iterator[request.Chunk | Result]:
        """Yield stdout/stderr Chunks while the job runs, then its Result (the same Result
        `run` returns). A Chunk("restart", "") means the job started over elsewhere."""
        job_id = self.submit(code, _stream=True, **kwargs)
        key = keys.output(self.pool, job_id)
        last = "0-0"
        while True:
            resp = self.redis.xread({key: last}, count=100, block=int(self.settings.recheck_s * 1000))
            for last, chunk in request.chunks_in(resp):
                if chunk is None:  # the end marker
                    yield self.wait(job_id)
                    return
                yield chunk
            if not resp and self.redis.exists(keys.result(self.pool, job_id)):
                # Finished without an end marker (rejected, or failed by the fleet): drain, then answer.
                for _, chunk in request.chunks_in(self.redis.xread({key: last}, count=10_000)):
                    if chunk is not None:
                        yield chunk
                yield self.wait(job_id)
                return

    def map(self, codes: Iterable[str], **kwargs) -> list[Result]:
        """Run many jobs at once; results come back in input order."""
        if "idempotency_key" in kwargs:
            raise TypeError("map() takes no idempotency_key: submit() each job with its own key")
        jobs = [request.build_job(code, limits=self.limits(), reply_to=self.channel, **kwargs) for code in codes]
        self._subscribe()
        stream = keys.stream(self.pool)
        with self.redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.xadd(stream, {"job": job.to_json()})
            pipe.execute()
        return [self.wait(job.job_id) for job in jobs]

    # -- plumbing ---------------------------------------------------------------------
    def _subscribe(self) -> None:
        if self._pubsub is not None:
            return
        pubsub = self.redis.pubsub()
        pubsub.subscribe(self.channel)
        # Wait for the confirmation: only then can no published result be missed.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = pubsub.get_message(timeout=1.0)
            if msg and msg["type"] == "subscribe":
                self._pubsub = pubsub
                return
        pubsub.close()
        raise ConnectionError(f"could not subscribe to {self.channel}")

    def _pump(self, timeout: float) -> None:
        """Take every result message available, waiting up to `timeout` for the first."""
        assert self._pubsub is not None
        msg = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        while msg is not None:
            if msg["type"] == "message":
                result = request.parse_result(msg["data"])
                self._arrived[result.job_id] = result
            msg = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0)

    def _recheck(self, job_ids: list[str]) -> None:
        raws = self.redis.mget([keys.result(self.pool, j) for j in job_ids])
        for job_id, raw in zip(job_ids, raws):
            if raw is not None:
                self._arrived[job_id] = request.parse_result(raw)

    def close(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None
        self.redis.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Client", "InvalidJob", "WaitTimeout"]
