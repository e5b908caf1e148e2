"""Exceptions a dispatcher client raises."""

from __future__ import annotations

from warmfleet.schema import JobError


class InvalidJob(JobError):
    """The job was refused before anything was enqueued; the message says why."""


class WaitTimeout(TimeoutError):
    """No result arrived within the caller's wait timeout; the job may still finish."""

    def __init__(self, job_id: str, timeout: float) -> None:
        super().__init__(f"no result for job {job_id} within {timeout} s (it may still finish)")
        self.job_id = job_id


class NoFleetConfigured(RuntimeError):
    """No Redis URL was given, set in WARMFLEET_REDIS_URL, or advertised by `warmfleet up`."""
