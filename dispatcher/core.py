"""Every decision a client makes, with no I/O: Client (redis-py, blocking) and
AsyncClient (redis.asyncio) wrap one ClientCore each and differ only in how they talk
to Redis.

The core owns: settings and pool, the client's reply channel, the fleet's published
limits (and so every default), building and validating jobs, the enqueue commands,
which results have arrived, when a wait must first look for a stored result, and how a
streaming job's output stream is walked.
"""

from __future__ import annotations

import time
from typing import TypedDict

from dispatcher import request
from dispatcher.errors import WaitTimeout
from dispatcher.request import Chunk
from dispatcher.session import RecordWatch, call_entry, open_request, stop_entry
from dispatcher.errors import SessionEnded, SessionLost
from warmfleet.settings import ClientSettings, load
from warmfleet.contract import keys
from warmfleet.plumbing import redis_retry
from warmfleet.contract.schema import FleetLimits, Job, Result
from warmfleet.contract.sessions import CLOSE_ENTRY

OUTPUT_READ_COUNT = 100  # output entries per XREAD while the job runs
OUTPUT_DRAIN_COUNT = 10_000  # what is left once the result is stored
GIVEN_CONNECTION = "(the Redis connection given to the client)"  # its url, in messages


class JobOptions(TypedDict, total=False):
    """What a caller may set on a job (besides its code). None, or left out: the fleet's
    published default (FleetLimits; language: python)."""

    language: str | None
    timeout: float | None
    cpu_time: float | None
    memory_mb: int | None
    files: dict[str, bytes | str] | None
    env: dict[str, str] | None  # environment variables for this job (a session call: that call only)


class ClientCore:
    def __init__(self, redis_url: str | None, pool: str | None, *, connection_given: bool = False) -> None:
        """`connection_given`: the caller handed the client an open Redis connection
        (Client(redis=...), as warmfleet.testing does), so no URL is looked for."""
        self.settings = load(ClientSettings, strict=False)  # a stray WARMFLEET_* name warns, never crashes
        self.pool = keys.check_pool(pool if pool is not None else self.settings.pool)
        self.url = (redis_url or GIVEN_CONNECTION) if connection_given else request.resolve_url(redis_url, self.settings)
        self.client_id = request.new_client_id()
        self.channel = keys.reply_channel(self.pool, self.client_id)
        self.stream = keys.stream(self.pool)
        self.limits_key = keys.limits(self.pool)
        self.limits: FleetLimits | None = None
        self.arrived: dict[str, Result] = {}  # published to us, not yet taken by a wait
        # Jobs this client enqueued while subscribed: their result is published to us, so
        # waiting for one needs no first look at the stored result.
        self._ours: set[str] = set()
        # Our jobs not answered yet: job id -> (entry id, the entry's job JSON), so that
        # after a failover what the new primary lost is added again (request.READD_LOST).
        self.in_flight: dict[str, tuple[str, str]] = {}
        self._subscriptions = 0
        self.readded = 0  # jobs added again after a failover, over this client's life

    @staticmethod
    def check_given(connection: object) -> None:
        """A connection handed to a client must decode replies to str, as ours do."""
        pool = getattr(connection, "connection_pool", None)
        if pool is None or not pool.connection_kwargs.get("decode_responses"):
            raise ValueError("redis= takes a redis-py client made with decode_responses=True")

    def connection_options(self) -> dict:
        """What both clients pass to redis-py (each adds its own Retry flavour)."""
        return {
            "decode_responses": True,
            "max_connections": self.settings.max_connections,
            "client_name": request.connection_name(self.client_id),
            "retry_on_error": redis_retry.RETRY_ON,
        }

    # -- building -------------------------------------------------------------------
    def set_limits(self, raw: str | None) -> FleetLimits:
        self.limits = request.parse_limits(raw)
        return self.limits

    def build(self, code: object, options: JobOptions, *, stream: bool = False, trace: dict | None = None) -> Job:
        """Validate against the published limits and build the job, or raise InvalidJob.
        `trace`: the submitting span's W3C context (tracing.submit_span)."""
        assert self.limits is not None, "read the fleet's limits first"
        return request.build_job(code, limits=self.limits, reply_to=self.channel, stream=stream, trace=trace, **options)

    def build_many(self, codes, options: dict, trace: dict | None = None) -> list[Job]:
        if "idempotency_key" in options:
            raise TypeError("map() takes no idempotency_key: submit() each job with its own key")
        return [self.build(code, options, trace=trace) for code in codes]  # type: ignore[arg-type]

    def entry(self, job: Job) -> dict:
        return {"job": job.to_json()}

    def idempotent_call(self, job: Job, idempotency_key: object) -> tuple[list[str], list]:
        """KEYS and ARGV of request.IDEMPOTENT_SUBMIT."""
        key = request.check_idempotency_key(idempotency_key)
        return [keys.idempotency(self.pool, key), self.stream], [job.job_id, self.settings.idempotency_ttl_s, job.to_json()]

    def enqueued(self, job: Job, job_id: str | bytes, entry_id: str | bytes = "", entry: dict | None = None) -> str:
        """After XADD (its entry id) or the idempotent script: the id to wait for. An
        idempotent call may answer with another client's job, whose result is not
        published to us."""
        job_id = job_id.decode() if isinstance(job_id, bytes) else job_id
        if job_id == job.job_id:
            self._ours.add(job_id)
            entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            self.in_flight[job_id] = (entry_id, (entry or self.entry(job))["job"])
        return job_id

    def idempotent_reply(self, reply: list) -> tuple[str, str]:
        """(job id, entry id) from request.IDEMPOTENT_SUBMIT."""
        job_id, entry_id = (x.decode() if isinstance(x, bytes) else x for x in reply)
        return job_id, entry_id

    # -- failover ---------------------------------------------------------------------
    def on_subscribed(self) -> bool:
        """A subscription confirmed. True when it is a re-subscription: the connection
        was lost, perhaps to a failover, so check for lost entries (readd_calls)."""
        self._subscriptions += 1
        return self._subscriptions > 1

    def readd_calls(self) -> list[tuple[list[str], list]]:
        """KEYS and ARGV of request.READD_LOST over every job still in flight."""
        items = list(self.in_flight.items())
        calls = []
        for start in range(0, len(items), request.READD_BATCH):
            chunk = items[start : start + request.READD_BATCH]
            calls.append((
                [self.stream, *(self.result_key(job_id) for job_id, _ in chunk)],
                [x for job_id, (entry_id, payload) in chunk for x in (job_id, entry_id, payload)],
            ))
        return calls

    def on_readded(self, reply: list) -> int:
        """Record the new entry ids READD_LOST answered; how many jobs it added again."""
        flat = [x.decode() if isinstance(x, bytes) else x for x in reply or []]
        for job_id, entry_id in zip(flat[::2], flat[1::2]):
            if job_id in self.in_flight:
                self.in_flight[job_id] = (entry_id, self.in_flight[job_id][1])
        self.readded += len(flat) // 2
        return len(flat) // 2

    # -- results --------------------------------------------------------------------
    def result_key(self, job_id: str) -> str:
        return keys.result(self.pool, job_id)

    def on_message(self, data: str | bytes) -> Result:
        result = request.parse_result(data)
        self.arrived[result.job_id] = result
        self.in_flight.pop(result.job_id, None)
        return result

    def on_stored(self, job_ids: list[str], raws: list[str | None]) -> None:
        """An MGET over result keys: stored results count as arrived."""
        for job_id, raw in zip(job_ids, raws):
            if raw is not None:
                self.arrived[job_id] = request.parse_result(raw)
                self.in_flight.pop(job_id, None)

    def take(self, job_id: str) -> Result | None:
        result = self.arrived.pop(job_id, None)
        if result is not None:
            self._ours.discard(job_id)
        return result

    def look_first(self, job_id: str) -> bool:
        """Must a wait look for the stored result before listening? Yes for a job we did
        not enqueue ourselves (it may have finished before we subscribed)."""
        return job_id not in self._ours and job_id not in self.arrived

    def recheck_keys(self, job_id: str, watch: RecordWatch | None) -> list[str]:
        """What a wait re-reads every recheck_s: the result, and a session call's record."""
        return [self.result_key(job_id)] + ([self.record_key(watch.session_id)] if watch is not None else [])

    def on_recheck(self, job_id: str, raws: list[str | None], watch: RecordWatch | None) -> SessionEnded | None:
        """A recheck's MGET: a stored result counts as arrived; else, for a session call,
        the error its record calls for (the wait looks for the result once more before
        raising it: the call may have been answered just before the session ended)."""
        self.on_stored([job_id], raws[:1])
        if watch is None or job_id in self.arrived:
            return None
        return watch.check(raws[1])

    # -- sessions -------------------------------------------------------------------
    def record_key(self, session_id: str) -> str:
        return keys.session(self.pool, session_id)

    def record_watch(self, session_id: str) -> RecordWatch:
        return RecordWatch(session_id, self.settings.session_lost_grace_s)

    def session_open(self, idle_timeout: float, max_lifetime: float) -> tuple[str, str, dict]:
        """(session id, the opens stream, the entry to add to it)."""
        session_id, fields = open_request(idle_timeout, max_lifetime, self.channel)
        return session_id, keys.session_opens(self.pool), fields

    def opened(self, session_id: str, result: Result) -> str:
        """The open's answer: the session id, or SessionLost saying why the fleet could not open it."""
        if not result.ok:
            raise SessionLost(session_id, f"the fleet could not open it: {result.error}")
        return session_id

    def session_call(self, session_id: str, job: Job, context: str = "") -> tuple[list[str], list]:
        """KEYS and ARGV of session.SUBMIT_CALL for a validated job as the session's call
        (in the named context's globals; "" the session's own)."""
        return [self.record_key(session_id), keys.session_calls(self.pool, session_id)], [call_entry(job, context)]

    def stop_call(self, session_id: str, call_id: str) -> tuple[str, dict]:
        """The session's calls stream and the entry that stops one call (its pod reads it
        beside the calls, so it reaches a call that is running)."""
        return keys.session_calls(self.pool, session_id), {stop_entry(): call_id}

    def called(self, job: Job) -> str:
        """A call the session accepted: its result is published to us, like our jobs'."""
        self._ours.add(job.job_id)
        return job.job_id

    def close_entry(self, session_id: str) -> tuple[str, dict]:
        """The session's calls stream and the entry that closes it after the calls before it."""
        return keys.session_calls(self.pool, session_id), dict(CLOSE_ENTRY)

    def deadline(self, timeout: float | None) -> "Deadline":
        return Deadline(timeout)

    def output(self, job_id: str) -> "OutputCursor":
        return OutputCursor(keys.output(self.pool, job_id), int(self.settings.recheck_s * 1000))


class Deadline:
    """A wait's deadline and its safety-net rechecks (results arrive by pub/sub; a lost
    notification is caught by re-reading the stored result every recheck_s)."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    def left(self, now: float) -> float | None:
        return None if self.at is None else self.at - now

    def check(self, job_id: str, now: float) -> None:
        if self.at is not None and now >= self.at:
            raise WaitTimeout(job_id, self.timeout or 0.0)


class OutputCursor:
    """Where a streaming job's output stream has been read up to, and what its entries mean."""

    def __init__(self, key: str, block_ms: int) -> None:
        self.key, self.block_ms, self.last = key, block_ms, "0-0"
        self.read_count, self.drain_count = OUTPUT_READ_COUNT, OUTPUT_DRAIN_COUNT

    def feed(self, resp: list | None) -> tuple[list[Chunk], bool]:
        """The chunks of an XREAD reply, and whether the end marker came (what follows it
        is not the job's)."""
        chunks = []
        for self.last, chunk in request.chunks_in(resp):
            if chunk is None:
                return chunks, True
            chunks.append(chunk)
        return chunks, False


__all__ = ["ClientCore", "Deadline", "JobOptions", "OutputCursor"]
