"""When must a pod be recycled? A pure decision over its published snapshot, by the
policy the settings tree defines (warmfleet/settings/sidecar.py)."""

from __future__ import annotations

import enum
import hashlib

from warmfleet.contract.snapshot import PodSnapshot
from warmfleet.settings import RecyclePolicy


class Reason(str, enum.Enum):
    TAINTED = "tainted"
    MEMORY = "memory"
    MAX_JOBS = "max_jobs"
    MAX_AGE = "max_age"


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
