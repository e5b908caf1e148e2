"""Exceptions a dispatcher client raises."""

from __future__ import annotations

from warmfleet.contract.schema import JobError


class InvalidJob(JobError):
    """The job was refused before anything was enqueued; the message says why."""


class WaitTimeout(TimeoutError):
    """No result arrived within the caller's wait timeout; the job may still finish."""

    def __init__(self, job_id: str, timeout: float) -> None:
        super().__init__(f"no result for job {job_id} within {timeout} s (it may still finish)")
        self.job_id = job_id


class NoFleetConfigured(RuntimeError):
    """No Redis URL was given, set (the redis_url setting), or advertised by `warmfleet up`."""


class SessionEnded(RuntimeError):
    """The session is over (closed, idle timeout, lifetime): its globals and files are
    gone, and calls are never run in a fresh interpreter instead. `reason` says why."""

    def __init__(self, session_id: str, reason: str) -> None:
        super().__init__(f"session {session_id} has ended: {reason}")
        self.session_id = session_id
        self.reason = reason


class SessionLost(SessionEnded):
    """The session ended abnormally: its executor died or was drained, its process died,
    or a call's budget forced a kill. `reason` says which."""

    def __init__(self, session_id: str, reason: str) -> None:
        RuntimeError.__init__(self, f"session {session_id} was lost: {reason}")
        self.session_id = session_id
        self.reason = reason
