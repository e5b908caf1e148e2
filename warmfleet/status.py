"""Read a pool's state from Redis: pods, slots, backlog. Used by `warmfleet status`,
`warmfleet up` (to know when it is ready), tests and the GC sidecar."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import redis

from warmfleet import keys


@dataclass
class PoolStatus:
    pool: str
    pods: list[dict] = field(default_factory=list)
    slots: int = 0
    ready: int = 0
    busy: int = 0
    stream_length: int = 0
    lag: int | None = 0
    pending: int = 0
    dead_letters: int = 0
    oldest_pending_s: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def group_backlog(groups: list[dict]) -> tuple[int | None, int]:
    """(lag, pending) of the fleet's consumer group in an XINFO GROUPS reply; lag is None
    when Redis cannot tell (entries deleted past the group's last-delivered id)."""
    for g in groups:
        if g.get("name") == keys.CONSUMER_GROUP:
            return g.get("lag"), g.get("pending") or 0
    return 0, 0


def entry_age_s(entry_id: str, now: float) -> float:
    """Seconds since a stream entry was added (its id starts with the ms timestamp)."""
    return round(max(0.0, now - int(entry_id.split("-")[0]) / 1000), 3)


def read_status(r: redis.Redis, pool: str) -> PoolStatus:
    st = PoolStatus(pool=pool)
    pod_ids = r.zrange(keys.pods(pool), 0, -1)
    if pod_ids:
        for raw in r.mget([keys.pod(pool, p) for p in pod_ids]):
            if raw is None:
                continue  # its TTL lapsed: the pod is gone
            pod = json.loads(raw)
            st.pods.append(pod)
            if not pod.get("draining"):
                st.slots += pod.get("slots", 0)
                st.ready += pod.get("ready", 0)
            st.busy += pod.get("busy", 0)
    stream = keys.stream(pool)
    st.stream_length = r.xlen(stream)
    st.dead_letters = r.xlen(keys.dead_letters(pool))
    try:
        groups = r.xinfo_groups(stream)
    except redis.exceptions.ResponseError:
        groups = []
    st.lag, st.pending = group_backlog(groups)
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


def sandbox_label(pod: dict) -> str:
    """"gvisor (runsc 0.0~20240729.0, ptrace)": what the pod runs in, as it published it."""
    if not pod.get("sandbox"):
        return "none"
    details = ", ".join(
        x for x in (
            f"{pod.get('sandbox_runtime')} {pod.get('sandbox_version', '')}".strip() if pod.get("sandbox_runtime") else "",
            pod.get("sandbox_platform") or "",
        ) if x
    )
    return f"gvisor ({details})" if details else "gvisor"


def format_table(st: PoolStatus) -> str:
    lines = [
        f"pool {st.pool}: {len(st.pods)} pods, {st.slots} slots, {st.ready} ready, {st.busy} busy",
        f"stream {st.stream_length} entries, lag {'unknown' if st.lag is None else st.lag}, pending {st.pending}, "
        f"dead letters {st.dead_letters}, oldest pending {st.oldest_pending_s if st.oldest_pending_s is not None else '-'} s",
    ]
    if st.pods:
        lines.append(f"{'POD':<28} {'SLOTS':>5} {'READY':>5} {'BUSY':>4} {'JOBS':>7} {'STATE':>8}  SANDBOX")
        for p in sorted(st.pods, key=lambda p: p.get("pod_id", "")):
            lines.append(
                f"{p.get('pod_id', '?'):<28} {p.get('slots', 0):>5} {p.get('ready', 0):>5} {p.get('busy', 0):>4} "
                f"{p.get('jobs_done', 0):>7} {'draining' if p.get('draining') else 'serving':>8}  {sandbox_label(p)}"
            )
    return "\n".join(lines)
