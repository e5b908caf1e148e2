"""Every Redis key, stream, group and channel name warmfleet uses, in one place.

All keys of a pool live under ``warmfleet:{POOL}:`` (braces included): one ACL pattern
(``~warmfleet:{POOL}:*``) covers everything an executor of that pool touches, and the
braces are a Redis Cluster hash tag, so every key of a pool hashes to one slot. The Lua
scripts that touch several keys (store + ack, idempotent submit, the recycle lease) stay
inside that slot, and pools spread over a cluster's shards.
The Kubernetes manifests are generated from these same functions.
"""

from __future__ import annotations

import re

PREFIX = "warmfleet"
CONSUMER_GROUP = "executors"
POOL_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")


def check_pool(pool: str) -> str:
    """A pool name is also a Kubernetes name suffix and a key segment: keep it DNS-safe."""
    if not isinstance(pool, str) or not POOL_NAME_RE.match(pool):
        raise ValueError(f"invalid pool name {pool!r}: use 1-32 chars of a-z, 0-9 and '-'")
    return pool


def hash_tag(pool: str) -> str:
    """The part of every key of the pool that Redis Cluster hashes (between the braces)."""
    return check_pool(pool)


def pool_prefix(pool: str) -> str:
    return f"{PREFIX}:{{{hash_tag(pool)}}}:"


def stream(pool: str) -> str:
    """The job stream the consumer group reads (and KEDA measures)."""
    return pool_prefix(pool) + "jobs"


def result(pool: str, job_id: str) -> str:
    """The stored result of one job (JSON string, SET NX with a TTL)."""
    return pool_prefix(pool) + "result:" + job_id


def output(pool: str, job_id: str) -> str:
    """Per-job stream of stdout/stderr chunks, for jobs submitted with streaming on."""
    return pool_prefix(pool) + "out:" + job_id


def reply_channel(pool: str, client_id: str) -> str:
    """Pub/sub channel a client listens on; executors publish finished results there."""
    return pool_prefix(pool) + "reply:" + client_id


def idempotency(pool: str, key: str) -> str:
    """Maps a client's idempotency key to the job id it created first."""
    return pool_prefix(pool) + "idem:" + key


def pods(pool: str) -> str:
    """Sorted set of pod ids scored by their last heartbeat (unix seconds)."""
    return pool_prefix(pool) + "pods"


def pod(pool: str, pod_id: str) -> str:
    """JSON snapshot of one pod (slots ready/busy, jobs served), with a TTL."""
    return pool_prefix(pool) + "pod:" + pod_id


def limits(pool: str) -> str:
    """The fleet's default and maximum job limits, published by executors for clients."""
    return pool_prefix(pool) + "limits"


def dead_letters(pool: str) -> str:
    """Stream of entries the fleet gave up on (malformed beyond reply, or too many deliveries)."""
    return pool_prefix(pool) + "dead"


def control(pool: str, pod_id: str) -> str:
    """A pod's control list (for example ``drain``), pushed by the GC sidecar or an operator."""
    return pool_prefix(pool) + "control:" + pod_id


def recycle_lease(pool: str) -> str:
    """Sorted set of pods currently recycling, bounding how many recycle at once."""
    return pool_prefix(pool) + "recycling"


def recycles(pool: str) -> str:
    """Hash of recycle counts by reason (max_age, max_jobs, memory, tainted), fleet-wide."""
    return pool_prefix(pool) + "recycles"


# -- sessions (a long-lived interpreter per agent; executor/sessions/host.py) ----------------
SESSION_WAKE_MAXLEN = 16


def session_opens(pool: str) -> str:
    """Stream of session-open requests, read by the group of pods with free session capacity."""
    return pool_prefix(pool) + "sessions:open"


def session(pool: str, session_id: str) -> str:
    """JSON record of one session (owning pod, state, end reason). While open its TTL is a
    lease the owning pod refreshes: a key that expired means the pod died."""
    return pool_prefix(pool) + "session:" + session_id


def session_calls(pool: str, session_id: str) -> str:
    """Stream of one session's calls (and its close request), read only by its pod."""
    return pool_prefix(pool) + "session:" + session_id + ":calls"


def session_wake(pool: str, pod_id: str) -> str:
    """Poked when a pod's set of open sessions changes, so its blocking read of their
    call streams starts over with the new set."""
    return pool_prefix(pool) + "sessions:wake:" + pod_id
