"""The stand-in's sessions: opens read from the pool's open stream, one thread per open
session serving its calls in order, the session records clients read, and the ends a
fleet gives a session (closed, idle_timeout, max_lifetime, lost, died).

Mirrors the pod's side (executor/sessions/: host.py, opens.py, calls.py) over
the same keys and records, without leases, reclaiming or isolation.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable

from executor.lean.verdict import CALL_WORDS, STATUS_OF, verdict
from warmfleet.contract import keys
from warmfleet.contract.messages import Call, RunOutcome
from warmfleet.contract.schema import FleetLimits, Result, Status, check_env
from warmfleet.contract.sessions import CLOSE_FIELD, SessionCall, SessionOpen, SessionRecord, SessionState
from warmfleet.testing.processes import Died, SessionProcess

log = logging.getLogger("warmfleet.testing")

LEASE_MS = 7 * 24 * 3600 * 1000  # an open session's record lease: the stand-in renews none
POLL_MS = 100  # a session thread's blocking read: how often it also checks its session's clock
LOST_REASONS = frozenset({"lost", "killed", "died", "drained"})  # as the fleet: told as SessionLost


class StandInSession:
    def __init__(self, session_id: str, index: int, proc: SessionProcess, workspace: str, idle_timeout: float,
                 max_lifetime: float, reply_to: str | None, now: float) -> None:
        self.id, self.index, self.proc, self.workspace = session_id, index, proc, workspace
        self.idle_timeout, self.max_lifetime, self.reply_to = idle_timeout, max_lifetime, reply_to
        self.opened_at = time.time()
        self.started = self.last_active = now
        self.calls = 0
        self.lock = threading.Lock()  # held while a call runs or the session ends
        self.ended = False
        self.thread: threading.Thread | None = None

    def record(self, pod: str, state: SessionState = SessionState.OPEN, reason: str = "", lost: bool = False) -> str:
        """The session record (keys.session) as a pod writes it."""
        return SessionRecord(
            session_id=self.id, pod=pod, state=state, reason=reason, lost=lost, opened_at=self.opened_at,
            idle_timeout=self.idle_timeout, max_lifetime=self.max_lifetime, calls=self.calls, index=self.index,
        ).to_json()


class SessionHost:
    """Every open session of one stand-in fleet."""

    def __init__(self, fleet, capacity: int, clock: Callable[[], float]) -> None:
        self.fleet, self.capacity, self.clock = fleet, capacity, clock
        self.pool: str = fleet.pool
        self.limits: FleetLimits = fleet.limits
        self.sessions: dict[str, StandInSession] = {}
        self.opened = 0  # sessions opened so far: the next one's index
        self.lock = threading.Lock()  # guards `sessions`

    # -- opening ------------------------------------------------------------------------
    def serve_opens(self) -> None:
        """The opens thread: read an open whenever there is room for a session."""
        r, stream = self.fleet.connection(), keys.session_opens(self.pool)
        while not self.fleet.stopping.is_set():
            if len(self.sessions) >= self.capacity:
                self.fleet.stopping.wait(POLL_MS / 1000)  # a period: room comes back when a session ends
                continue
            resp = r.xreadgroup(keys.CONSUMER_GROUP, "standin-sessions", {stream: ">"}, count=1, block=POLL_MS)
            for _, entries in resp or []:
                for entry_id, fields in entries:
                    self.open(r, entry_id, fields or {})

    def open(self, r, entry_id: str, fields: dict) -> None:
        stream = keys.session_opens(self.pool)
        try:
            req = SessionOpen.from_entry(fields)
            if not (req.idle_timeout > 0 and req.max_lifetime > 0):
                raise ValueError("idle_timeout and max_lifetime must be positive")
        except ValueError as exc:
            self.fleet.dead_letter(r, entry_id, f"malformed session open: {exc}", stream, fields)
            return
        sid, idle, life, reply_to = req.session_id, req.idle_timeout, req.max_lifetime, req.reply_to
        workspace = tempfile.mkdtemp(prefix="session-", dir=self.fleet.root)
        proc = SessionProcess(self.limits, workspace)
        session = StandInSession(sid, self.opened, proc, workspace, idle, life, reply_to, self.clock())
        self.opened += 1
        record_keys = [keys.session(self.pool, sid), keys.result(self.pool, sid)]
        # The record claimed "opening", then turned "open" (or "ended") with the answer, as a pod
        # does (session_open_claim/answer.lua). Its lease is the stand-in's life: no pod dies here.
        if self.fleet.script(r, "session_open_claim", record_keys,
                             [session.record(self.fleet.name, SessionState.OPENING), LEASE_MS]) != "claimed":
            r.xack(stream, keys.CONSUMER_GROUP, entry_id)  # answered already (a client's retry)
            shutil.rmtree(workspace, ignore_errors=True)
            return
        try:
            proc.start()
        except (Died, OSError) as exc:
            why = f"could not start: {exc}"
            self.answer_open(r, session, session.record(self.fleet.name, SessionState.ENDED, f"lost: {why}", True),
                             Result(job_id=sid, status=Status.FAILED, executor=self.fleet.name, error=why), entry_id)
            shutil.rmtree(workspace, ignore_errors=True)
            return
        with self.lock:
            self.sessions[sid] = session
        session.thread = threading.Thread(target=self.fleet.guarded(self.serve_calls, session),
                                          name=f"warmfleet-standin-session-{sid[:8]}", daemon=True)
        session.thread.start()
        self.answer_open(r, session, session.record(self.fleet.name),
                         Result(job_id=sid, status=Status.OK, executor=self.fleet.name), entry_id)

    def answer_open(self, r, session: StandInSession, record: str, result: Result, entry_id: str) -> None:
        self.fleet.script(
            r, "session_open_answer",
            [keys.session(self.pool, session.id), keys.result(self.pool, session.id), keys.session_opens(self.pool)],
            [self.fleet.name, record, LEASE_MS, result.to_json(), self.fleet.result_ttl_s, keys.CONSUMER_GROUP,
             entry_id, self.fleet.channel(session.reply_to)],
        )

    # -- calls --------------------------------------------------------------------------
    def serve_calls(self, session: StandInSession) -> None:
        """One session's thread: its calls in order, and its clock between them."""
        r, calls_key, last = self.fleet.connection(), keys.session_calls(self.pool, session.id), "0-0"
        while not (session.ended or self.fleet.stopping.is_set()):
            resp = r.xread({calls_key: last}, count=1, block=POLL_MS)
            with session.lock:
                if session.ended:
                    return
                for _, entries in resp or []:
                    for last, fields in entries:
                        if CLOSE_FIELD in (fields or {}):
                            self.end(r, session, "closed")
                            return
                        self.call(r, session, last, fields or {})
                        if session.ended:
                            return
                self.check(r, session)

    def call(self, r, session: StandInSession, entry_id: str, fields: dict) -> None:
        calls_key = keys.session_calls(self.pool, session.id)
        try:
            call = SessionCall.from_entry(fields)
            check_env(call.env)
        except (ValueError, KeyError) as exc:
            call_id, reply_to = SessionCall.salvage(fields)
            if call_id is None:
                r.xdel(calls_key, entry_id)
                return
            result = Result(job_id=call_id, status=Status.REJECTED, error=f"malformed session call: {exc!r}"[:1000],
                            executor=self.fleet.name)
            self.fleet.answer_call(r, result, reply_to or session.reply_to, calls_key, entry_id)
            return
        reply_to, started = call.reply_to or session.reply_to, time.time()
        # The message for the session process: the call's fields it acts on, copied by name.
        run = Call(**{n: getattr(call, n) for n in Call.fields() if n in SessionCall.model_fields})
        end_reason, count = "", None
        try:
            reply, killed_for, out = session.proc.call(run)
        except Died as exc:
            why, status = str(exc), session.proc.exit_status()
            ended = STATUS_OF[exc.overrun] if exc.overrun is not None else Status.ERROR
            outcome = RunOutcome(status=ended.value, exit_code=status, error=f"{why}; the session ended",
                                 duration_s=round(time.time() - started, 6))
            end_reason = f"lost: {why}"
        else:
            if killed_for is not None:  # a budget it was stopped for overrules its own account
                status_, exit_code, error = verdict(run, killed_for, reply.exit_code, words=CALL_WORDS)
                reply = reply.replace(status=status_.value, exit_code=exit_code, error=error)  # type: ignore[assignment]
            outcome, count = reply.outcome(), reply.execution_count
            if outcome.error_name == "Interrupted" and outcome.error:
                outcome.error_value = outcome.error  # the cell says which budget stopped it, as the pod's
            out.into(outcome)
        result = Result(**outcome.as_dict(), execution_count=count, job_id=call.call_id,
                        executor=f"{self.fleet.name}/session-{session.index}",
                        queue_wait_s=round(max(0.0, started - call.submitted_at), 6))
        session.calls += 1
        session.last_active = self.clock()
        self.fleet.answer_call(r, result, reply_to, calls_key, entry_id)
        if end_reason:
            self.end(r, session, end_reason)
        elif self.clock() - session.started > session.max_lifetime:
            self.end(r, session, "max_lifetime")

    # -- ending -------------------------------------------------------------------------
    def check(self, r, session: StandInSession) -> None:
        """Between calls (the session's lock held): a dead process, the idle timeout, the lifetime."""
        now = self.clock()
        if (status := session.proc.exit_status()) is not None:
            self.end(r, session, f"died: the session's process exited between calls (wait status {status})")
        elif now - session.last_active > session.idle_timeout:
            self.end(r, session, "idle_timeout")
        elif now - session.started > session.max_lifetime:
            self.end(r, session, "max_lifetime")

    def check_all(self) -> None:
        """Every session's check now (after the clock moved), each under its lock."""
        r = self.fleet.connection()
        for session in self.open_sessions():
            with session.lock:
                if not session.ended:
                    self.check(r, session)

    def end(self, r, session: StandInSession, reason: str) -> None:
        """Kill the process, record why the session ended, drop its calls (lock held)."""
        session.ended = True
        session.proc.kill()
        lost = reason.split(":", 1)[0] in LOST_REASONS
        with r.pipeline(transaction=True) as pipe:
            pipe.set(keys.session(self.pool, session.id), session.record(self.fleet.name, SessionState.ENDED, reason, lost),
                     ex=self.fleet.result_ttl_s)
            pipe.delete(keys.session_calls(self.pool, session.id))
            pipe.execute()
        shutil.rmtree(session.workspace, ignore_errors=True)
        with self.lock:
            self.sessions.pop(session.id, None)
        log.info("stand-in session ended", extra={"session_id": session.id, "reason": reason})

    def open_sessions(self) -> list[StandInSession]:
        with self.lock:
            return list(self.sessions.values())

    def find(self, session_id: str) -> StandInSession:
        try:
            return self.sessions[session_id]
        except KeyError:
            raise KeyError(f"no open session {session_id!r} on this stand-in fleet") from None

    def kill_process(self, session_id: str) -> int:
        """SIGKILL a session's process as a crash would, and end the session as the fleet
        does when it finds the process gone (lost). Returns the pid killed."""
        session = self.find(session_id)
        with session.lock:
            pid = session.proc.pid
            assert pid is not None
            session.proc.kill()
            if not session.ended:
                self.check(self.fleet.connection(), session)
        return pid

    def stop(self) -> None:
        r = self.fleet.connection()
        open_now = self.open_sessions()
        for session in open_now:  # a call in progress ends now, not at its wall clock
            session.proc.signal_kill()
        for session in open_now:
            with session.lock:
                if not session.ended:
                    self.end(r, session, "drained: the stand-in fleet stopped")
        for session in open_now:
            if session.thread is not None:
                session.thread.join(5)


__all__ = ["SessionHost", "StandInSession"]
