"""Read a pool's state from Redis: pods, slots, backlog. Used by `warmfleet status`,
`warmfleet up` (to know when it is ready), tests and the GC sidecar."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import redis

from warmfleet.contract import keys
from warmfleet.contract.backlog import entry_age_s, group_backlog
from warmfleet.contract.snapshot import PodSnapshot, parse_all


@dataclass
class PoolStatus:
    pool: str
    pods: list[PodSnapshot] = field(default_factory=list)
    slots: int = 0
    ready: int = 0
    busy: int = 0
    stream_length: int = 0
    lag: int | None = 0
    pending: int = 0
    dead_letters: int = 0
    oldest_pending_s: float | None = None
    # Sessions (executor/sessions/host.py): capacity and what is open, idle, waiting to open,
    # and how many ended by reason (as the live pods count them).
    sessions_capacity: int = 0
    sessions_open: int = 0
    sessions_idle: int = 0
    sessions_waiting: int | None = 0
    sessions_ended: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def read_status(r: redis.Redis, pool: str) -> PoolStatus:
    st = PoolStatus(pool=pool)
    pod_ids = r.zrange(keys.pods(pool), 0, -1)
    if pod_ids:
        # A pod whose key is gone (TTL lapsed) is gone, whatever the pods set says.
        for pod in parse_all(r.mget([keys.pod(pool, p) for p in pod_ids])):
            st.pods.append(pod)
            if not pod.draining:
                st.slots += pod.slots
                st.ready += pod.ready
            st.busy += pod.busy
            st.sessions_open += pod.sessions_open
            st.sessions_idle += pod.sessions_idle
            if not pod.draining:
                st.sessions_capacity += pod.sessions_capacity
            for reason, n in pod.sessions_ended.items():
                st.sessions_ended[reason] = st.sessions_ended.get(reason, 0) + n
    stream = keys.stream(pool)
    st.stream_length = r.xlen(stream)
    st.dead_letters = r.xlen(keys.dead_letters(pool))
    try:
        groups = r.xinfo_groups(stream)
    except redis.exceptions.ResponseError:
        groups = []
    st.lag, st.pending = group_backlog(groups)
    try:
        st.sessions_waiting = group_backlog(r.xinfo_groups(keys.session_opens(pool)))[0]
    except redis.exceptions.ResponseError:
        st.sessions_waiting = 0  # no session stream yet
    if st.pending:
        oldest = r.xpending_range(stream, keys.CONSUMER_GROUP, min="-", max="+", count=1)
        if oldest:
            st.oldest_pending_s = entry_age_s(oldest[0]["message_id"], time.time())
    return st


def wait_ready(r: redis.Redis, pool: str, slots: int, timeout: float) -> PoolStatus:
    """Block until at least `slots` slots are ready. Raises TimeoutError with the last status."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            st = read_status(r, pool)
            if st.ready >= slots:
                return st
        except redis.exceptions.ConnectionError:
            st = None
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{st.ready if st else 0} of {slots} slots ready after {timeout} s")
        time.sleep(0.05)  # poll with a deadline: readiness lives in Redis


def sandbox_label(pod: PodSnapshot) -> str:
    """"gvisor (runsc 0.0~20240729.0, ptrace)": what the pod runs in, as it published it."""
    if not pod.sandbox:
        return "none"
    details = ", ".join(
        x for x in (
            f"{pod.sandbox_runtime} {pod.sandbox_version}".strip() if pod.sandbox_runtime else "",
            pod.sandbox_platform,
        ) if x
    )
    return f"gvisor ({details})" if details else "gvisor"


def format_table(st: PoolStatus) -> str:
    lines = [
        f"pool {st.pool}: {len(st.pods)} pods, {st.slots} slots, {st.ready} ready, {st.busy} busy",
        f"stream {st.stream_length} entries, lag {'unknown' if st.lag is None else st.lag}, pending {st.pending}, "
        f"dead letters {st.dead_letters}, oldest pending {st.oldest_pending_s if st.oldest_pending_s is not None else '-'} s",
    ]
    if st.sessions_capacity or st.sessions_open or st.sessions_ended:
        ended = ", ".join(f"{k} {v}" for k, v in sorted(st.sessions_ended.items())) or "none"
        lines.append(
            f"sessions {st.sessions_open} open of {st.sessions_capacity}, {st.sessions_idle} idle, "
            f"{'unknown' if st.sessions_waiting is None else st.sessions_waiting} waiting to open; ended: {ended}"
        )
    if st.pods:
        lines.append(f"{'POD':<28} {'SLOTS':>5} {'READY':>5} {'BUSY':>4} {'JOBS':>7} {'STATE':>8}  SANDBOX")
        for p in sorted(st.pods, key=lambda p: p.pod_id):
            lines.append(
                f"{p.pod_id:<28} {p.slots:>5} {p.ready:>5} {p.busy:>4} "
                f"{p.jobs_done:>7} {'draining' if p.draining else 'serving':>8}  {sandbox_label(p)}"
            )
    return "\n".join(lines)
