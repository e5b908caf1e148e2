"""The recycle policy for `warmfleet up`: the same decision, lease and drain as in
Kubernetes, but "replace" deletes the runsc sandbox and starts a fresh pod in its place.

Memory is the host's view of the whole sandbox (Sentry, gofer and everything inside):
that is what grows when a long-lived sandbox accumulates state.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

import psutil
import redis

from gc_sidecar.policy import Reason, decide
from warmfleet.settings import RecyclePolicy
from gc_sidecar.recycler import RecycleRecord, Recycler, wait_until
from warmfleet.contract import keys
from warmfleet.plumbing import redis_connect
from warmfleet.contract.snapshot import PodSnapshot



class Fleet(Protocol):
    """What the recycler needs of the LocalFleet that owns it (no import: the fleet imports us)."""

    client_url: str
    settings: Any  # FleetSettings: .pool
    pods: list  # of Pod: .pod_id, .index, .recycling, .alive(), .sandbox, .proc, .log_path

    def replace_pod(self, old: Any) -> Any: ...

log = logging.getLogger("warmfleet.gc.local")


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as f:
            return "\n".join(f.read().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def tree_rss(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue  # exited between listing and reading
    return total


class LocalRecycler:
    def __init__(self, fleet: Fleet, policy: RecyclePolicy) -> None:
        self.fleet = fleet
        self.policy = policy
        self.redis = redis_connect.connect(fleet.client_url, decode_responses=True)
        self.recycler = Recycler(self.redis, fleet.settings.pool, policy, replace_timeout_s=60.0)
        self.history: list[tuple[int, RecycleRecord, str]] = []  # (pod index, record, new pod id)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="local-recycler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for w in self._workers:
            w.join(timeout=self.policy.drain_timeout_s + 30)
        self.redis.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.policy.check_s):
            self._workers = [w for w in self._workers if w.is_alive()]
            try:
                self.check_once()
            except redis.exceptions.RedisError as exc:
                log.warning("recycle check failed", extra={"error": str(exc)})

    def check_once(self) -> None:
        pool = self.fleet.settings.pool
        candidates = [p for p in list(self.fleet.pods) if not p.recycling and p.alive()]
        if not candidates:
            return
        raws = self.redis.mget([keys.pod(pool, p.pod_id) for p in candidates])
        now = time.time()
        for pod, raw in zip(candidates, raws):
            if raw is None or self._stop.is_set():
                continue
            snap = PodSnapshot.from_json(raw)
            rss = tree_rss(pod.sandbox.pid if pod.sandbox else (pod.proc.pid if pod.proc else None))
            reason = decide(self.policy, snap, rss, now)
            if reason is None:
                continue
            started_at = snap.started_at if snap.started_at is not None else now
            figures = {"age_s": round(now - started_at, 2), "jobs_done": snap.jobs_done, "rss_bytes": rss}
            if not self.recycler.try_start(pod.pod_id, reason, figures).granted:
                continue
            pod.recycling = True
            w = threading.Thread(target=self._recycle, args=(pod, reason), name=f"recycle-{pod.pod_id}", daemon=True)
            self._workers.append(w)
            w.start()

    def _recycle(self, pod: Any, reason: Reason) -> None:
        fresh: list[Any] = []

        def replace(drained: bool) -> str:
            if self._stop.is_set():
                return "fleet_stopping"  # fleet.stop removes the old pod with the rest
            if not drained:
                log.error("pod did not drain in time", extra={"pod_id": pod.pod_id, "log_tail": _tail(pod.log_path)})
            new = self.fleet.replace_pod(pod)
            fresh.append(new)
            # Hold the lease until the replacement serves: the cap then bounds lost capacity.
            serving = wait_until(lambda: self._serving(new), 60.0, self._stop)
            return "replaced" if serving else "replaced_not_ready"

        try:
            rec = self.recycler.run(pod.pod_id, reason, lambda: not pod.alive(), replace, self._stop)
        except Exception:  # noqa: BLE001 - a failed recycle must not kill the recycler thread
            log.exception("recycle failed", extra={"pod_id": pod.pod_id})
            return
        self.history.append((pod.index, rec, fresh[0].pod_id if fresh else ""))

    def _serving(self, pod: Any) -> bool:
        raw = self.redis.get(keys.pod(self.fleet.settings.pool, pod.pod_id))
        if raw is None:
            return False
        return PodSnapshot.from_json(raw).fully_serving

    def recycles_by_index(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for index, _rec, _new in self.history:
            out[index] = out.get(index, 0) + 1
        return out
