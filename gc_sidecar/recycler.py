"""One recycle of one pod, the same in Kubernetes and in `warmfleet up`:

lease (cap + floor) -> count it -> tell the executor to drain (through its control list:
stop reading, finish in-flight jobs, acknowledge, exit) -> wait with a deadline until it
has gone -> replace it (evict the pod / delete the sandbox and start a fresh one) ->
release the lease. Draining first is what makes a recycle lose nothing: a pod that is
gone before it acknowledged leaves entries pending until another slot reclaims them.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import redis
from prometheus_client import CollectorRegistry, Counter

from gc_sidecar.lease import LeaseAnswer, RecycleLease
from gc_sidecar.policy import Reason
from warmfleet.settings import RecyclePolicy
from warmfleet.contract import keys

log = logging.getLogger("warmfleet.gc")

REGISTRY = CollectorRegistry()
RECYCLES = Counter("warmfleet_gc_recycles", "Pod recycles started, by reason.", ["pool", "reason"], registry=REGISTRY)
RECYCLES_BLOCKED = Counter(
    "warmfleet_gc_recycles_deferred", "Recycles put off by the fleet-wide cap or floor.", ["pool", "why"],
    registry=REGISTRY,
)
CONTROL_TTL_S = 600  # a drain request nobody reads (the pod died) must not linger forever


@dataclass
class RecycleRecord:
    pod_id: str
    reason: str
    started: float
    drained: bool = False
    drain_s: float = 0.0
    total_s: float = 0.0
    outcome: str = ""
    extra: dict = field(default_factory=dict)


class Recycler:
    def __init__(self, r: redis.Redis, pool: str, policy: RecyclePolicy, replace_timeout_s: float = 120.0) -> None:
        self.redis = r
        self.pool = pool
        self.policy = policy
        self.lease = RecycleLease(r, pool, policy.max_recycling, policy.min_serving_slots)
        # The lease outlives a normal recycle (drain + replace), and lapses if we die.
        self.lease_ttl_s = policy.drain_timeout_s + replace_timeout_s

    def request_drain(self, pod_id: str) -> None:
        control = keys.control(self.pool, pod_id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(control, "drain")
            pipe.expire(control, CONTROL_TTL_S)
            pipe.execute()

    def try_start(self, pod_id: str, reason: Reason, figures: dict) -> LeaseAnswer:
        answer = self.lease.acquire(pod_id, self.lease_ttl_s)
        if not answer.granted:
            RECYCLES_BLOCKED.labels(self.pool, answer.why).inc()
            log.debug("recycle deferred", extra={"pod_id": pod_id, "reason": reason.value, "why": answer.why,
                                                "others_serving": answer.others_serving})
            return answer
        RECYCLES.labels(self.pool, reason.value).inc()
        self.redis.hincrby(keys.recycles(self.pool), reason.value, 1)
        log.warning("recycling pod", extra={"pod_id": pod_id, "reason": reason.value,
                                            "others_serving": answer.others_serving, **figures})
        return answer

    def run(
        self,
        pod_id: str,
        reason: Reason,
        gone: Callable[[], bool],
        replace: Callable[[bool], str],
        stop: threading.Event | None = None,
    ) -> RecycleRecord:
        """Drain, wait until `gone()` (or the drain deadline), `replace(drained)`, release.
        The caller holds the lease (try_start)."""
        rec = RecycleRecord(pod_id, reason.value, time.time())
        t0 = time.monotonic()
        try:
            self.request_drain(pod_id)
            rec.drained = wait_until(gone, self.policy.drain_timeout_s, stop)
            rec.drain_s = round(time.monotonic() - t0, 3)
            if not rec.drained and not (stop and stop.is_set()):
                log.error("drain deadline passed; replacing anyway", extra={"pod_id": pod_id})
            rec.outcome = replace(rec.drained)
        finally:
            self.lease.release(pod_id)
            rec.total_s = round(time.monotonic() - t0, 3)
            log.warning("recycled pod", extra={"pod_id": pod_id, "reason": rec.reason, "drained": rec.drained,
                                               "drain_s": rec.drain_s, "total_s": rec.total_s, "outcome": rec.outcome})
        return rec

    def counts(self) -> dict[str, int]:
        raw = self.redis.hgetall(keys.recycles(self.pool))
        return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}


def wait_until(condition: Callable[[], bool], timeout: float, stop: threading.Event | None = None,
               poll_s: float = 0.05) -> bool:
    """Poll `condition` until true or the deadline; False at the deadline or on `stop`."""
    deadline = time.monotonic() + timeout
    stop = stop or threading.Event()
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline or stop.wait(poll_s):
            return bool(condition())
