"""Each job's egress as the proxy saw it: destinations (allowed or denied, bytes), and
the job's connection and byte budgets. Bounded: records are forgotten when the
supervisor collects them, after a TTL, or (oldest first) beyond a count."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field

MAX_DESTINATIONS = 64  # per job, in the Result; counts go on beyond it


@dataclass
class Destination:
    destination: str
    allowed: bool
    reason: str | None = None
    connections: int = 0
    bytes_out: int = 0  # job -> destination
    bytes_in: int = 0  # destination -> job

    def as_dict(self) -> dict:
        return {
            "destination": self.destination, "allowed": self.allowed, "reason": self.reason,
            "connections": self.connections, "bytes_out": self.bytes_out, "bytes_in": self.bytes_in,
        }


@dataclass
class JobUsage:
    job_id: str
    created: float = field(default_factory=time.monotonic)
    connections: int = 0
    bytes: int = 0
    limit_hit: str | None = None
    destinations: dict[str, Destination] = field(default_factory=dict)
    tunnels: set[asyncio.StreamWriter] = field(default_factory=set)

    def destination(self, dest: str, allowed: bool, reason: str | None) -> Destination:
        key = f"{dest} {allowed}"
        record = self.destinations.get(key)
        if record is None:
            record = Destination(dest, allowed, reason)
            if len(self.destinations) < MAX_DESTINATIONS:
                self.destinations[key] = record
        return record

    def report(self) -> dict:
        return {
            "destinations": [d.as_dict() for d in self.destinations.values()],
            "connections": self.connections,
            "bytes": self.bytes,
            "limit_hit": self.limit_hit,
        }

    def close_tunnels(self) -> None:
        for writer in list(self.tunnels):
            writer.close()
        self.tunnels.clear()


class UsageBook:
    def __init__(self, ttl_s: float, max_jobs: int) -> None:
        self.ttl_s = ttl_s
        self.max_jobs = max_jobs
        self.jobs: OrderedDict[str, JobUsage] = OrderedDict()

    def get(self, job_id: str) -> JobUsage:
        self._expire()
        usage = self.jobs.get(job_id)
        if usage is None:
            usage = self.jobs[job_id] = JobUsage(job_id)
            while len(self.jobs) > self.max_jobs:
                self.jobs.popitem(last=False)[1].close_tunnels()
        return usage

    def collect(self, job_id: str) -> dict:
        """The job's report, and forget it: the job is over, so are its tunnels."""
        usage = self.jobs.pop(job_id, None)
        if usage is None:
            return JobUsage(job_id).report()
        usage.close_tunnels()
        return usage.report()

    def _expire(self) -> None:
        now = time.monotonic()
        while self.jobs:
            first = next(iter(self.jobs.values()))
            if now - first.created < self.ttl_s:
                return
            self.jobs.popitem(last=False)[1].close_tunnels()
