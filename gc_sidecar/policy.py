"""When must a pod be recycled? A pure decision over its published snapshot."""

from __future__ import annotations

import enum
import hashlib

from pydantic import BaseModel, Field

from warmfleet.contract.snapshot import PodSnapshot


class Reason(str, enum.Enum):
    TAINTED = "tainted"
    MEMORY = "memory"
    MAX_JOBS = "max_jobs"
    MAX_AGE = "max_age"


class RecyclePolicy(BaseModel):
    """Environment: WARMFLEET_GC__MAX_AGE_S and so on (nested under the sidecar's settings)."""

    max_age_s: float = Field(default=3600.0, ge=0)  # 0: never by age
    # Each pod's age limit is max_age_s * (1 - age_jitter * u), u in [0, 1) fixed per pod, so
    # a fleet started together does not recycle together; the limit is never exceeded.
    age_jitter: float = Field(default=0.2, ge=0, lt=1)
    max_jobs: int = Field(default=0, ge=0)  # 0: no limit
    max_memory_mb: int = Field(default=0, ge=0)  # executor RSS bound; 0: no limit
    recycle_tainted: bool = False  # recycle after a job hit a limit
    max_recycling: int = Field(default=1, ge=1)  # fleet-wide, at once
    min_serving_slots: int = Field(default=0, ge=0)  # never recycle below this many serving slots
    # A pod with open sessions (executor/sessions/host.py) is not recycled for age or job count
    # until they end, or until it is this long past its age limit (then the drain ends
    # them as lost, with the reason). Tainted or oversized pods recycle at once.
    session_wait_s: float = Field(default=3600.0, ge=0)
    drain_timeout_s: float = Field(default=360.0, gt=0)
    check_s: float = Field(default=5.0, gt=0)


def jitter_fraction(pod_id: str, started_at: float) -> float:
    """A stable u in [0, 1) per pod incarnation: the same answer on every check."""
    digest = hashlib.sha256(f"{pod_id}:{started_at!r}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def age_limit(policy: RecyclePolicy, pod_id: str, started_at: float) -> float:
    return policy.max_age_s * (1 - policy.age_jitter * jitter_fraction(pod_id, started_at))


def decide(policy: RecyclePolicy, snapshot: PodSnapshot, rss_bytes: int | None, now: float) -> Reason | None:
    """The first reason this pod must recycle, most urgent first; None to keep it."""
    reason = _due(policy, snapshot, rss_bytes, now)
    if reason in (Reason.MAX_JOBS, Reason.MAX_AGE) and snapshot.sessions_open and snapshot.started_at is not None:
        started_at = float(snapshot.started_at)
        if now - started_at < age_limit(policy, snapshot.pod_id, started_at) + policy.session_wait_s:
            return None  # its sessions may end first
    return reason


def _due(policy: RecyclePolicy, snapshot: PodSnapshot, rss_bytes: int | None, now: float) -> Reason | None:
    if snapshot.draining:
        return None  # already on its way out
    if policy.recycle_tainted and snapshot.tainted > 0:
        return Reason.TAINTED
    if policy.max_memory_mb and rss_bytes is not None and rss_bytes > policy.max_memory_mb * 1024 * 1024:
        return Reason.MEMORY
    if policy.max_jobs and snapshot.jobs_done >= policy.max_jobs:
        return Reason.MAX_JOBS
    started_at = snapshot.started_at
    if policy.max_age_s and started_at is not None:
        if now - float(started_at) >= age_limit(policy, snapshot.pod_id, float(started_at)):
            return Reason.MAX_AGE
    return None
