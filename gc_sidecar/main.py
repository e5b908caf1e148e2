"""The sidecar process in Kubernetes (`python -m gc_sidecar`, `warmfleet gc`): watch this
pod's executor, and when the policy says so, drain it and evict the pod.

It runs as a native sidecar (an initContainer with restartPolicy: Always), so it starts
before the executor and gets SIGTERM only after the executor has exited.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

import redis

from gc_sidecar import health_server, k8s
from gc_sidecar.policy import decide
from gc_sidecar.recycler import Recycler
from warmfleet.settings import SidecarSettings
from warmfleet.contract import keys, probe
from warmfleet.plumbing import redis_connect
from warmfleet.contract.snapshot import PodSnapshot

log = logging.getLogger("warmfleet.gc")


class Sidecar:
    def __init__(self, settings: SidecarSettings, api=None) -> None:
        self.settings = settings
        self.redis = redis_connect.connect(settings.redis_url, decode_responses=True, socket_timeout=10)
        self.recycler = Recycler(self.redis, settings.pool, settings.gc, settings.eviction_deadline_s)
        self.api = api
        self.namespace = settings.namespace or k8s.current_namespace()
        self.stop = threading.Event()
        self.evicted = False

    def snapshot(self) -> PodSnapshot | None:
        raw = self.redis.get(keys.pod(self.settings.pool, self.settings.pod_id))
        return PodSnapshot.from_json(raw) if raw else None

    def executor_gone(self) -> bool:
        """Drained: the supervisor wrote that it stopped (after its last ack and deregistering);
        without a readable health file, its pod key being gone says the same."""
        health = probe.read(self.settings.health_file)
        if health is not None:
            return bool(health.get("stopped"))
        return self.snapshot() is None

    def check_once(self) -> str | None:
        """One policy check; returns the recycle outcome if it recycled."""
        snap = self.snapshot()
        if snap is None:
            return None  # the executor is starting, or not reachable: nothing to judge
        health = probe.read(self.settings.health_file) or {}
        rss = health.get("rss_bytes")
        reason = decide(self.settings.gc, snap, rss, time.time())
        if reason is None:
            return None
        started_at = snap.started_at if snap.started_at is not None else time.time()
        figures = {"age_s": round(time.time() - started_at, 1), "jobs_done": snap.jobs_done, "rss_bytes": rss}
        if not self.recycler.try_start(self.settings.pod_id, reason, figures).granted:
            return None
        rec = self.recycler.run(self.settings.pod_id, reason, self.executor_gone, self._evict, self.stop)
        return rec.outcome

    def _evict(self, drained: bool) -> str:
        if self.api is None:
            self.api = k8s.in_cluster_api()
        try:
            outcome = k8s.evict(self.api, self.settings.pod_id, self.namespace, self.settings.eviction_deadline_s)
        except k8s.EvictionFailed as exc:
            log.error("could not evict; the pod stays", extra={"error": str(exc)})
            return "eviction_failed"
        self.evicted = True
        return outcome

    def run(self) -> int:
        s = self.settings
        server = None
        if s.probe_port:
            server = health_server.make_server(s.probe_addr, s.probe_port, s.health_file)
            health_server.serve_in_background(server)
        log.info("gc sidecar started", extra={"pod_id": s.pod_id, "namespace": self.namespace, **s.gc.model_dump()})
        while not self.stop.wait(s.gc.check_s):
            if self.evicted:
                continue  # the kubelet is terminating us; keep serving probes until SIGTERM
            try:
                self.check_once()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("redis unavailable; will check again", extra={"error": str(exc)})
        if server is not None:
            server.shutdown()
        self.redis.close()
        return 0


def main() -> int:
    from warmfleet.plumbing import logs

    from warmfleet.settings import SettingsError, load

    try:
        settings = load(SidecarSettings)
    except SettingsError as exc:  # an unknown name (with the closest known one), a bad value
        print(f"warmfleet gc: {exc}", file=sys.stderr)
        return os.EX_CONFIG
    logs.setup(settings.log_level)
    sidecar = Sidecar(settings, k8s.api_for(settings.kubernetes_host) if settings.kubernetes_host else None)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sidecar.stop.set())
    return sidecar.run()
