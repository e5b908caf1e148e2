"""One open session as its pod keeps it: its process, limits, call queue, and the
record (keys.session, warmfleet.contract.sessions.SessionRecord) that clients read to
know whether it is open or why it ended."""

from __future__ import annotations

import asyncio
import collections
import time

from executor.egress.sessions import SessionEgress
from executor.sessions.handle import SessionProcess
from warmfleet.contract.sessions import SessionRecord, SessionState

# End reasons (the label before ":") a client is told as SessionLost rather than SessionEnded.
LOST_REASONS = frozenset({"lost", "killed", "died", "drained"})


class Session:
    def __init__(self, session_id: str, index: int, proc: SessionProcess, idle_timeout: float, max_lifetime: float,
                 reply_to: str | None) -> None:
        self.id, self.index, self.proc = session_id, index, proc
        self.idle_timeout, self.max_lifetime, self.reply_to = idle_timeout, max_lifetime, reply_to
        self.opened_at = time.time()
        self.started = self.last_active = time.monotonic()
        self.busy, self.calls = False, 0
        self.queue: asyncio.Queue = asyncio.Queue()
        self.seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.worker: asyncio.Task | None = None
        self.ending = self.doomed = False
        self.budget = (10.0, 256 << 20)  # the last call's CPU and memory: background work between calls is held to it
        self.egress: SessionEgress | None = None  # in a pool with egress: its relay, run by us
        self.current_call: str | None = None
        # Calls whose client asked to stop them (a "stop" entry on the calls stream, read
        # while a call runs): the running one is interrupted, a queued one as it starts.
        self.stops: set[str] = set()

    def adopt(self, session_id: str, idle_timeout: float, max_lifetime: float, reply_to: str | None) -> "Session":
        """A spare (started ahead, idle, nobody's) becomes this open's session: its clocks
        start now, not when it was forked."""
        self.id, self.idle_timeout, self.max_lifetime, self.reply_to = session_id, idle_timeout, max_lifetime, reply_to
        self.opened_at = time.time()
        self.started = self.last_active = time.monotonic()
        return self

    def record(self, pod_id: str, state: SessionState = SessionState.OPEN, reason: str = "", lost: bool = False) -> str:
        return SessionRecord(
            session_id=self.id, pod=pod_id, state=state, reason=reason, lost=lost, opened_at=self.opened_at,
            idle_timeout=self.idle_timeout, max_lifetime=self.max_lifetime, calls=self.calls, index=self.index,
        ).to_json()
