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


# -- the HTTP service (warmfleet/http/): tenants, API keys, sandboxes, quotas --------------
# Under one hash tag of their own, ``{_http}`` ('_' is never in a pool name, so no pool's
# keys can collide, and an executor's ACL pattern ``~warmfleet:{POOL}:*`` never reaches an
# API key). One slot: the quota scripts touch several of these keys at once.
HTTP_PREFIX = PREFIX + ":{_http}:"


def api_keys() -> str:
    """Hash: sha256 hex of an API key -> the tenant's JSON (warmfleet/http/tenants.py).
    Only the hash is stored; the key itself is printed once by `warmfleet keys add`."""
    return HTTP_PREFIX + "api-keys"


def http_sandbox(sandbox_id: str) -> str:
    """JSON record of one E2B sandbox (its tenant, pool, session, token hash, metadata,
    end time): a sandbox is a session, this is what the protocol adds to it."""
    return HTTP_PREFIX + "sandbox:" + sandbox_id


def http_sandbox_ends() -> str:
    """Sorted set of every open sandbox id scored by its end time (unix seconds): each
    replica's reaper closes the ones whose time has come."""
    return HTTP_PREFIX + "sandbox-ends"


def tenant_sandboxes(tenant: str) -> str:
    """Sorted set of a tenant's open sandbox ids scored by their end time: its
    max_sandboxes quota, and the list GET /v2/sandboxes answers from."""
    return HTTP_PREFIX + "tenant:" + tenant + ":sandboxes"


def tenant_running(tenant: str) -> str:
    """Sorted set of a tenant's executions in flight scored by a lease deadline: its
    max_running quota. A replica that dies mid-call leaves entries that expire."""
    return HTTP_PREFIX + "tenant:" + tenant + ":running"


def tenant_rate(tenant: str, second: int) -> str:
    """Requests of a tenant in one wall-clock second (a counter that expires): its rate."""
    return HTTP_PREFIX + "tenant:" + tenant + ":rate:" + str(second)


def http_sandbox_contexts(sandbox_id: str) -> str:
    """Hash: context id -> JSON of one code context of an E2B sandbox (its language and
    cwd); the context's globals live in the sandbox's session process."""
    return HTTP_PREFIX + "sandbox:" + sandbox_id + ":contexts"


def http_session(session_id: str) -> str:
    """JSON record of a session opened through /v1 (its tenant, pool and limits;
    warmfleet/http/v1/sessions.py): which tenant may use it. Expires after its lifetime."""
    return HTTP_PREFIX + "session:" + session_id
