"""StandInFleet: a whole pool on an in-process fake Redis, for unit tests of code built
on the client. It isolates NOTHING (see warmfleet/testing/__init__.py).

Threads of the test's process play the pods: `slots` job threads, each with a slot
runner, read the pool's job stream through the consumer group and answer every entry
as a pod does (store the Result SET NX, publish it to the client's channel, ack and
delete the entry; a streaming job's chunks and end marker on its output stream); an
opens thread and one thread per open session do the same for sessions
(warmfleet/testing/sessions.py). Keys, records and Results are the contract's
(warmfleet.contract: keys, schema): the real Client and AsyncClient run against it
unchanged, given its connection (`fleet.client()`, `Client(redis=fleet.connection())`).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import fakeredis
from pydantic import ValidationError

from warmfleet.contract import keys, lua, messages
from warmfleet.contract.messages import RunJob
from warmfleet.contract.schema import JOB_ID_RE, FleetLimits, Job, JobError, Result, Status, explain
from warmfleet.testing.processes import ProcessGone, Runner
from warmfleet.testing.sessions import SessionHost

if TYPE_CHECKING:
    from dispatcher.aio import AsyncClient
    from dispatcher.client import Client

log = logging.getLogger("warmfleet.testing")

POLL_MS = 100  # a job thread's blocking read: how often it looks at the stop flag
RESULT_TTL_S = 3600
STOP_TIMEOUT_S = 10.0
NOT_ISOLATED = (
    "warmfleet.testing runs jobs and sessions as plain processes of this test, as its user: "
    "it isolates NOTHING (no gVisor, no uid, no network or file boundary). Use it only for code you trust."
)


class NotIsolatedWarning(UserWarning):
    """Issued when a stand-in fleet starts: the code it runs is not sandboxed."""


class ManualClock:
    """A clock for sessions' idle timeouts and lifetimes that moves only when told:
    StandInFleet(clock=ManualClock()) and then fleet.advance(seconds)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StandInFleet:
    """A stand-in for a warmfleet pool in unit tests: the real client protocol, plain
    subprocesses, no Redis server, no gVisor, and no isolation whatsoever.

        with StandInFleet() as fleet, fleet.client() as client:
            assert client.run("print(1)").stdout == "1\\n"

    `slots`: jobs run at once; `sessions`: sessions open at once (more opens wait, as on
    a full fleet); `limits`: the budgets the fleet publishes (defaults and maxima);
    `clock`: what session idle timeouts and lifetimes are measured on (time.monotonic,
    or a ManualClock moved by `advance`). `fleet.jobs`: the jobs it took, in order.
    """

    def __init__(self, pool: str = "default", *, slots: int = 2, sessions: int = 4,
                 limits: FleetLimits | None = None, clock: Callable[[], float] | None = None,
                 result_ttl_s: int = RESULT_TTL_S) -> None:
        self.pool = keys.check_pool(pool)
        self.limits = limits or FleetLimits()
        self.slots, self.result_ttl_s = slots, result_ttl_s
        self.clock = clock or time.monotonic
        self.name = f"standin-{self.pool}"
        self.server = fakeredis.FakeServer()
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.jobs: list[Job] = []  # every valid job the fleet took, in order: what a test's code submitted
        self.root = ""
        self.host = SessionHost(self, sessions, self.clock)
        self._threads: list[threading.Thread] = []
        self._runners: list[Runner] = []

    # -- what tests use -----------------------------------------------------------------
    def connection(self) -> fakeredis.FakeRedis:
        """A new redis-py client on this fleet's fake Redis (decode_responses=True)."""
        return fakeredis.FakeRedis(server=self.server, decode_responses=True)

    def async_connection(self) -> fakeredis.FakeAsyncRedis:
        """A new redis.asyncio client on this fleet's fake Redis (decode_responses=True)."""
        return fakeredis.FakeAsyncRedis(server=self.server, decode_responses=True)

    def client(self) -> "Client":
        """A real warmfleet.Client on this fleet (close it, or use it as a context manager)."""
        from dispatcher.client import Client

        return Client(pool=self.pool, redis=self.connection())

    def async_client(self) -> "AsyncClient":
        """A real warmfleet.AsyncClient on this fleet; make it inside the test's event loop."""
        from dispatcher.aio import AsyncClient

        return AsyncClient(pool=self.pool, redis=self.async_connection())

    def advance(self, seconds: float) -> None:
        """Move a ManualClock on and end, before returning, every session whose idle
        timeout or lifetime that passes (the next call raises SessionEnded)."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("advance() needs StandInFleet(clock=ManualClock())")
        self.clock.advance(seconds)
        self.host.check_all()

    def session_pid(self, session_id: str) -> int:
        """The pid of an open session's process."""
        pid = self.host.find(session_id).proc.pid
        assert pid is not None
        return pid

    def kill_session_process(self, session_id: str) -> int:
        """Kill an open session's process, as a crash would; the session ends lost (the
        next call raises SessionLost). Returns the pid killed."""
        return self.host.kill_process(session_id)

    def join(self, timeout: float = 30.0) -> None:
        """Wait until every job submitted so far has been answered (like dramatiq's
        StubBroker.join). TimeoutError after `timeout` seconds."""
        r, deadline = self.connection(), time.monotonic() + timeout
        while r.xlen(keys.stream(self.pool)):
            self._raise_errors()
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still unanswered after {timeout} s")
            self.stopping.wait(0.01)  # a poll with a deadline: answered entries are deleted

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, _stacklevel: int = 2) -> "StandInFleet":
        warnings.warn(NOT_ISOLATED, NotIsolatedWarning, stacklevel=_stacklevel)
        self.root = tempfile.mkdtemp(prefix="warmfleet-standin-")
        r = self.connection()
        r.set(keys.limits(self.pool), self.limits.model_dump_json())
        for stream in (keys.stream(self.pool), keys.session_opens(self.pool)):
            r.xgroup_create(stream, keys.CONSUMER_GROUP, id="0", mkstream=True)
        for slot in range(self.slots):
            workspace = tempfile.mkdtemp(prefix=f"slot-{slot}-", dir=self.root)
            runner = Runner(self.limits, workspace, slot)
            self._runners.append(runner)
            self._thread(self.serve_jobs, f"warmfleet-standin-slot-{slot}", runner, slot)
        self._thread(self.host.serve_opens, "warmfleet-standin-opens")
        return self

    def stop(self) -> None:
        """Stop every thread, runner and session process; remove their workspaces."""
        self.stopping.set()
        for runner in self._runners:  # a job in progress ends now, not at its wall clock
            runner.kill()
        self.host.stop()
        for thread in self._threads:
            thread.join(STOP_TIMEOUT_S)
        for runner in self._runners:
            runner.stop()
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "StandInFleet":
        return self.start(_stacklevel=3)

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.stop()
        if exc is None:
            self._raise_errors()

    def _raise_errors(self) -> None:
        """A thread of the stand-in failed: that is a bug to see, not a hang."""
        if self.errors:
            raise RuntimeError(f"the stand-in fleet failed: {self.errors[0]!r}") from self.errors[0]

    def guarded(self, target: Callable, *args: object) -> Callable[[], None]:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:  # noqa: BLE001 - kept, raised in the test at exit
                if not self.stopping.is_set():
                    log.exception("stand-in fleet thread failed")
                    self.errors.append(exc)

        return run

    def _thread(self, target: Callable, name: str, *args: object) -> None:
        thread = threading.Thread(target=self.guarded(target, *args), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- jobs -----------------------------------------------------------------------------
    def serve_jobs(self, runner: Runner, slot: int) -> None:
        r, stream = self.connection(), keys.stream(self.pool)
        while not self.stopping.is_set():
            resp = r.xreadgroup(keys.CONSUMER_GROUP, f"{self.name}-{slot}", {stream: ">"}, count=1, block=POLL_MS)
            for _, entries in resp or []:
                for entry_id, fields in entries:
                    self.run_entry(r, runner, slot, entry_id, fields or {})

    def run_entry(self, r, runner: Runner, slot: int, entry_id: str, fields: dict) -> None:
        stream, executor = keys.stream(self.pool), f"{self.name}/{slot}"
        raw = fields.get("job")
        if raw is None:
            self.dead_letter(r, entry_id, "entry has no 'job' field", stream, fields)
            return
        try:
            job = Job.from_json(raw).check(self.limits)
        except (ValidationError, JobError) as exc:
            why = f"malformed job: {explain(exc)}" if isinstance(exc, ValidationError) else str(exc)
            salvaged = _salvage(raw)
            if salvaged is None:
                self.dead_letter(r, entry_id, why, stream, fields)
                return
            job_id, reply_to = salvaged
            self.answer(r, Result(job_id=job_id, status=Status.REJECTED, error=why, executor=executor),
                        reply_to, stream, entry_id)
            return
        self.jobs.append(job)
        started = time.time()
        out_key = keys.output(self.pool, job.job_id)

        def on_chunk(chunk: messages.Chunk) -> None:
            r.xadd(out_key, messages.chunk_record(chunk))

        run = RunJob(**{name: getattr(job, name) for name in RunJob.fields() if name != "egress"}, egress=None)
        try:
            outcome = runner.run(run, on_chunk)
            result = Result(job_id=job.job_id, executor=executor, queue_wait_s=round(max(0.0, started - job.submitted_at), 6),
                            **outcome.as_dict())
        except ProcessGone as exc:  # a fleet would run it again elsewhere; the stand-in says why
            result = Result(job_id=job.job_id, status=Status.FAILED, executor=executor,
                            error=f"the stand-in's runner died: {exc}")
        self.answer(r, result, job.reply_to, stream, entry_id)
        if job.stream:
            r.xadd(out_key, messages.END_RECORD)
            r.expire(out_key, self.result_ttl_s)
        if runner.proc is not None:
            runner.next()

    # -- answering, as a pod does: the contract's own scripts (warmfleet/contract/lua) ----
    def script(self, r, name: str, keys_: list[str], args: list) -> object:
        return r.register_script(lua.script(name))(keys=keys_, args=args)

    def channel(self, reply_to: str | None) -> str:
        """Where to publish a result: the client's channel, never outside the pool ('': nowhere)."""
        return reply_to if reply_to and reply_to.startswith(keys.reply_channel(self.pool, "")) else ""

    def answer(self, r, result: Result, reply_to: str | None, stream: str, entry_id: str) -> bool:
        """Store the result once, publish it to the client if stored, ack and delete the
        entry it answers (job_result_store.lua)."""
        return bool(self.script(r, "job_result_store", [keys.result(self.pool, result.job_id), stream],
                                [result.to_json(), self.result_ttl_s, keys.CONSUMER_GROUP, entry_id, self.channel(reply_to)]))

    def answer_call(self, r, result: Result, reply_to: str | None, calls_key: str, entry_id: str) -> bool:
        """A session call's answer, its entry dropped (session_call_store.lua)."""
        return bool(self.script(r, "session_call_store", [keys.result(self.pool, result.job_id), calls_key],
                                [result.to_json(), self.result_ttl_s, self.channel(reply_to), entry_id]))

    def dead_letter(self, r, entry_id: str, reason: str, stream: str, fields: dict | None = None) -> None:
        """Keep an entry nobody can be answered for, as a pod does (executor/store.py), then ack it."""
        sample = {str(k)[:64]: str(v)[:256] for k, v in list((fields or {}).items())[:8]}
        r.xadd(keys.dead_letters(self.pool), {"entry_id": entry_id, "job_id": "", "reason": reason[:1000],
                                              "fields": json.dumps(sample), "ts": time.time()})
        r.xack(stream, keys.CONSUMER_GROUP, entry_id)
        r.xdel(stream, entry_id)


def _salvage(raw: str) -> tuple[str, str | None] | None:
    """The job id and reply channel of a job the fleet refuses, so it can say why."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("job_id"), str):
        return None
    if not JOB_ID_RE.match(data["job_id"]):
        return None
    reply_to = data.get("reply_to")
    return data["job_id"], reply_to if isinstance(reply_to, str) else None
