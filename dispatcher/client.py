"""The synchronous client: submit code to a pool, wait for its Result. Every decision
is ClientCore's (dispatcher/core.py); this file is the blocking I/O around it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Unpack

import redis

from dispatcher import request
from dispatcher.core import ClientCore, JobOptions
from dispatcher.errors import InvalidJob, SessionEnded, WaitTimeout
from dispatcher.session import (
    CLOSE_POLL_S, CLOSE_WAIT_S, MISSING_POLL_S, SUBMIT_CALL, RecordWatch, check_context, ended_error, options,
)
from warmfleet.plumbing import redis_connect, redis_retry, tracing
from warmfleet.contract.schema import FleetLimits, Result


class Client:
    """Submit jobs and wait for results. Not thread-safe: use one per thread.

    Results are pushed to this client over pub/sub (one connection, whatever the
    number of jobs in flight); the stored result is the source of truth. `pool`: None
    is the pool setting (default "default"; docs/reference/settings.md). `redis`: an open
    redis-py client (decode_responses=True) to use instead of connecting to `redis_url`,
    for example a stand-in fleet's (warmfleet.testing); the client closes it with itself.
    """

    def __init__(self, redis_url: str | None = None, *, pool: str | None = None, redis: "redis.Redis | None" = None) -> None:
        self.core = core = ClientCore(redis_url, pool, connection_given=redis is not None)
        self.settings, self.pool, self.url, self.client_id, self.channel = (
            core.settings, core.pool, core.url, core.client_id, core.channel
        )
        if redis is None:
            redis = redis_connect.connect(self.url, retry=redis_retry.sync_retry(), **core.connection_options())
        else:
            core.check_given(redis)
        self.redis = redis
        self._pubsub: redis.client.PubSub | None = None
        self._submit_idempotent = self.redis.register_script(request.IDEMPOTENT_SUBMIT)
        self._readd = self.redis.register_script(request.READD_LOST)
        self._submit_call = self.redis.register_script(SUBMIT_CALL)
        self._check_lost = False  # set by a re-subscription: a failover may have lost entries

    # -- submitting -------------------------------------------------------------------
    def limits(self) -> FleetLimits:
        return self.core.limits or self.core.set_limits(self.redis.get(self.core.limits_key))

    def submit(
        self, code: str, *, idempotency_key: str | None = None, _stream: bool = False, **options: Unpack[JobOptions]
    ) -> str:
        """Enqueue one job and return its id. Raises InvalidJob before enqueueing anything.

        Options (JobOptions): language, timeout, cpu_time, memory_mb (None: the fleet's
        defaults), files: placed in the job's workspace before it runs; files the job
        writes under out/ come back in Result.files (see Result.file(name)).
        """
        self.limits()
        with tracing.submit_span(self.pool) as trace_context:
            job = self.core.build(code, options, stream=_stream, trace=trace_context)
            self._subscribe()
            entry = self.core.entry(job)
            if idempotency_key is None:
                return self.core.enqueued(job, job.job_id, self.redis.xadd(self.core.stream, entry), entry)
            keys_, args = self.core.idempotent_call(job, idempotency_key)
            job_id, entry_id = self.core.idempotent_reply(self._submit_idempotent(keys=keys_, args=args))
            return self.core.enqueued(job, job_id, entry_id, entry)

    # -- waiting ----------------------------------------------------------------------
    def wait(self, job_id: str, timeout: float | None = None, *, watch: RecordWatch | None = None) -> Result:
        """Block until the job's result exists. Raises WaitTimeout after `timeout` seconds.
        `watch`: the job is a session call; raise SessionEnded/SessionLost when its
        session's record says the session is over (Session.run passes it)."""
        self._subscribe()
        deadline = self.core.deadline(timeout)
        # A job submitted elsewhere may have finished before we subscribed: look first.
        next_check = time.monotonic() + (0.0 if self.core.look_first(job_id) else self.settings.recheck_s)
        outage_since: float | None = None
        while (result := self.core.take(job_id)) is None:
            now = time.monotonic()
            deadline.check(job_id, now)
            try:
                if self._check_lost:  # results that exist are left alone: the next recheck reads them
                    self._check_lost = False
                    for keys_, args in self.core.readd_calls():
                        self.core.on_readded(self._readd(keys=keys_, args=args))
                    next_check = now  # and re-read this job's result now
                    continue
                if now >= next_check:  # safety net for a lost notification
                    ended = self.core.on_recheck(job_id, self.redis.mget(self.core.recheck_keys(job_id, watch)), watch)
                    if ended is not None:
                        self.core.on_stored([job_id], [self.redis.get(self.core.result_key(job_id))])
                        if (result := self.core.take(job_id)) is not None:
                            return result
                        raise ended
                    next_check = now + self.settings.recheck_s
                    continue
                left = deadline.left(now)
                self._pump(next_check - now if left is None else min(next_check - now, left))
                outage_since = None
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                outage_since = outage_since or now
                if now - outage_since > self.settings.outage_s:
                    raise ConnectionError(f"Redis at {self.url} unreachable for {self.settings.outage_s} s: {exc}") from exc
                time.sleep(min(1.0, self.settings.recheck_s))  # reconnect backoff
        return result

    def run(self, code: str, **kwargs) -> Result:
        """Submit and wait. `timeout` is the job's wall clock; the wait allows for queueing."""
        return self.wait(self.submit(code, **kwargs))

    def stream(self, code: str, **kwargs) -> Iterator[request.Chunk | Result]:
        """Yield stdout/stderr Chunks while the job runs, then its Result (the same Result
        `run` returns). A Chunk("restart", "") means the job started over elsewhere."""
        job_id = self.submit(code, _stream=True, **kwargs)
        out = self.core.output(job_id)
        while True:
            resp = self.redis.xread({out.key: out.last}, count=out.read_count, block=out.block_ms)
            chunks, ended = out.feed(resp)
            yield from chunks
            if ended:
                yield self.wait(job_id)
                return
            if not resp and self.redis.exists(self.core.result_key(job_id)):
                # Finished without an end marker (rejected, or failed by the fleet): drain, then answer.
                yield from out.feed(self.redis.xread({out.key: out.last}, count=out.drain_count))[0]
                yield self.wait(job_id)
                return

    def map(self, codes: Iterable[str], **kwargs) -> list[Result]:
        """Run many jobs at once; results come back in input order."""
        self.limits()
        codes = list(codes)
        with tracing.submit_span(self.pool, len(codes)) as trace_context:
            jobs = self.core.build_many(codes, kwargs, trace_context)
            self._subscribe()
            entries = [self.core.entry(job) for job in jobs]
            with self.redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    pipe.xadd(self.core.stream, entry)
                entry_ids = pipe.execute()
        job_ids = [self.core.enqueued(job, job.job_id, e_id, e) for job, e_id, e in zip(jobs, entry_ids, entries)]
        return [self.wait(job_id) for job_id in job_ids]

    def session(
        self, id: str | None = None, *, idle_timeout: float = 300.0, max_lifetime: float = 3600.0,
        open_timeout: float = 60.0,
    ) -> "Session":
        """Open a session (one interpreter that keeps its globals and files across calls),
        or reattach to an open one by `id`. Use it as a context manager: leaving the block
        closes a session it opened (a reattached one stays open). Raises SessionLost if
        the fleet could not open it, WaitTimeout if no pod took it within `open_timeout`."""
        if id is not None:
            return Session.attach(self, id)
        return Session.open(self, idle_timeout, max_lifetime, open_timeout)

    def open_session(self, idle_timeout: float, max_lifetime: float, open_timeout: float) -> str:
        """Ask the pool for a session and wait for a pod's answer; its id. (Client.session
        wraps this in a Session.)"""
        self._subscribe()
        session_id, opens, fields = self.core.session_open(idle_timeout, max_lifetime)
        entry_id = self.redis.xadd(opens, fields)
        try:
            result = self.wait(session_id, timeout=open_timeout)
        except WaitTimeout:
            self.redis.xdel(opens, entry_id)  # no pod took it: nobody will
            raise WaitTimeout(session_id, open_timeout) from None
        return self.core.opened(session_id, result)

    def submit_call(self, session_id: str, code: str, options: JobOptions, watch: RecordWatch, *,
                    context: str = "") -> str:
        """Enqueue `code` as a call of the session, only while it is open; the call id to
        wait for. Raises SessionEnded/SessionLost when the record says it is over."""
        self.limits()
        job = self.core.build(code, options)
        self._subscribe()
        keys_, args = self.core.session_call(session_id, job, context)
        while True:
            ok, rec = self._submit_call(keys=keys_, args=args)
            if ok:
                return self.core.called(job)
            if (err := watch.check(rec or None)) is not None:
                raise err
            time.sleep(MISSING_POLL_S)  # poll with a deadline (the grace): a starved pod renews it late

    def session_record(self, session_id: str) -> str | None:
        return self.redis.get(self.core.record_key(session_id))

    def close_session(self, session_id: str) -> None:
        self.redis.xadd(*self.core.close_entry(session_id))

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
                self.core.on_subscribed()
                self._pubsub = pubsub
                return
        pubsub.close()
        raise ConnectionError(f"could not subscribe to {self.channel}")

    def _pump(self, timeout: float) -> None:
        """Take every result message available, waiting up to `timeout` for the first."""
        assert self._pubsub is not None
        msg = self._pubsub.get_message(timeout=timeout)
        while msg is not None:
            if msg["type"] == "message":
                self.core.on_message(msg["data"])
            elif msg["type"] == "subscribe" and self.core.on_subscribed():
                self._check_lost = True  # redis-py reconnected and re-subscribed: we were away
            msg = self._pubsub.get_message(timeout=0)

    def close(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None
        self.redis.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Session:
    """A session used from a sync Client. Not thread-safe, like the Client. Every Redis
    command and every wait is the client's (the same submit-and-wait as a job's); this
    object only remembers which session it is and whether it ended."""

    def __init__(self, client: "Client", session_id: str, owned: bool) -> None:
        self.client, self.id, self.owned = client, session_id, owned
        self.ended: SessionEnded | None = None

    @classmethod
    def open(cls, client: "Client", idle_timeout: float, max_lifetime: float, open_timeout: float) -> "Session":
        return cls(client, client.open_session(idle_timeout, max_lifetime, open_timeout), owned=True)

    @classmethod
    def attach(cls, client: "Client", session_id: str) -> "Session":
        watch = client.core.record_watch(session_id)
        while (err := watch.check(raw := client.session_record(session_id))) is None and raw is None:
            time.sleep(MISSING_POLL_S)  # poll with a deadline (the grace): a starved pod renews it late
        if err is not None:
            raise err
        return cls(client, session_id, owned=False)

    def run(self, code: str, *, files: dict | None = None, timeout: float | None = None,
            cpu_time: float | None = None, memory_mb: int | None = None, env: dict[str, str] | None = None,
            language: str | None = None, context: str | None = None) -> Result:
        """Run `code` in the session's globals and workspace, as a notebook cell; the same
        Result and budgets as Client.run (None: the fleet's defaults). `env`: variables set
        for this call only (the session's own are back after it); `language` "bash": a bash
        process in the workspace; `context`: another set of globals in the same session."""
        if self.ended is not None:
            raise self.ended
        watch = self.client.core.record_watch(self.id)
        try:
            call_id = self.client.submit_call(self.id, code, options(files, timeout, cpu_time, memory_mb, env, language),
                                              watch, context=check_context(context))
            return self.client.wait(call_id, watch=watch)
        except SessionEnded as err:
            self.ended = err
            raise

    def close(self, wait: float = CLOSE_WAIT_S) -> None:
        """End the session (after the calls already sent) and wait up to `wait` seconds
        until its pod has cleaned it up; later calls raise SessionEnded."""
        if self.ended is None:
            self.client.close_session(self.id)
            self.ended = SessionEnded(self.id, "closed")
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and ended_error(self.id, self.client.session_record(self.id)) is None:
                time.sleep(CLOSE_POLL_S)  # poll with a deadline: the pod records the end

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.owned:  # a reattached session stays open for whoever opened it
            self.close()


__all__ = ["Client", "InvalidJob", "Session", "WaitTimeout"]
