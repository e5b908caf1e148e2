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
lease lapsed) means lost only once it stayed missing for session_lost_grace_s. A call is
submitted and waited for by the client exactly as a job is (dispatcher/core.py decides,
Client and AsyncClient do the I/O); this module holds what only sessions have: their
requests and the record watch. The objects users hold, Session and AsyncSession, sit
beside their clients (dispatcher/client.py, dispatcher/aio.py).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

from dispatcher.errors import SessionEnded, SessionLost
from warmfleet.contract import lua
from warmfleet.contract.schema import Job
from warmfleet.contract.sessions import STOP_FIELD, SessionCall, SessionOpen, SessionRecord, SessionState


CLOSE_WAIT_S = 10.0
CLOSE_POLL_S = 0.02
MISSING_POLL_S = 0.2  # how often a call or attach looks again for a missing record

SUBMIT_CALL = lua.script("session_call_submit")  # warmfleet/contract/lua/session_call_submit.lua


def open_request(idle_timeout: float, max_lifetime: float, reply_to: str) -> tuple[str, dict]:
    for name, value in (("idle_timeout", idle_timeout), ("max_lifetime", max_lifetime)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    session_id = uuid.uuid4().hex
    return session_id, SessionOpen(session_id=session_id, idle_timeout=idle_timeout, max_lifetime=max_lifetime,
                                   reply_to=reply_to).entry()


CONTEXT_RE = re.compile(r"^[A-Za-z0-9_.-]{0,64}$")


def call_entry(job: Job, context: str = "") -> str:
    """A validated job, as a session call (its job id is the call id). `context`: which
    of the session's globals it runs in ("" the session's own); a streaming job's output
    is published as it is written; language "bash" runs as bash."""
    return SessionCall.from_job(job, context).to_json()


def check_context(context: object) -> str:
    """A context name: up to 64 of letters, digits, '_', '.', '-' (None: the session's own)."""
    if context is None:
        return ""
    if not isinstance(context, str) or not CONTEXT_RE.match(context):
        raise ValueError(f"context must be up to 64 chars of letters, digits, '_', '.', '-', got {context!r}")
    return context


def stop_entry() -> str:
    """The field of a calls-stream entry that stops one call (its value: the call id)."""
    return STOP_FIELD


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


def options(files: dict | None, timeout: float | None, cpu_time: float | None, memory_mb: int | None,
            env: dict | None = None, language: str | None = None) -> dict:
    """A call's JobOptions (dispatcher/core.py), from Session.run's keyword arguments."""
    return {"timeout": timeout, "cpu_time": cpu_time, "memory_mb": memory_mb,
            "files": dict(files) if files is not None else None, "env": env, "language": language}
