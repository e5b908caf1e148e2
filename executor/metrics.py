"""Prometheus metrics of one executor pod, counted in the supervisor process.

The supervisor sees every job's outcome (status, duration, CPU, queue wait), every
runner restart and every dead letter, so it is the one exporter per pod. Runners and
job children never import prometheus_client: they are lean `python -S -I` processes
whose fork cost grows with their memory map (docs/design/field-notes.md).

Served over HTTP on the metrics_port setting (default 9464, 0 disables). Stream gauges
(lag, pending, dead letters, oldest pending age) describe the whole pool, so every pod
reports the same value: aggregate them with max(), not sum().
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

import psutil
import redis.exceptions
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from warmfleet.contract import keys
from warmfleet.contract.backlog import entry_age_s, group_backlog
from warmfleet.contract.snapshot import PodSnapshot

if TYPE_CHECKING:
    from warmfleet.contract.schema import Result


class Pod(Protocol):
    """What the exporter reads of the pod (the Supervisor; no import: it imports us)."""

    settings: Any  # ExecutorSettings: .pool, .metrics_port, .metrics_addr, .metrics_refresh_s
    redis: Any
    runner_pids: dict
    orphans_reaped: int

    def snapshot(self) -> PodSnapshot: ...

log = logging.getLogger("warmfleet.metrics")

disable_created_metrics()  # no *_created series: half the exposition, nothing a dashboard uses
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # process_* of the supervisor itself

# Snippets run for milliseconds to minutes: fine buckets at the low end, up to the max timeout.
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

JOBS_RECEIVED = Counter(
    "warmfleet_jobs_received", "Stream entries a slot read (new or redelivered).", ["pool"], registry=REGISTRY
)
JOBS_COMPLETED = Counter(
    "warmfleet_jobs_completed", "Jobs answered with a stored result, by status.", ["pool", "status"], registry=REGISTRY
)
JOB_DURATION = Histogram(
    "warmfleet_job_duration_seconds", "Wall-clock time a job's code ran.", ["pool"],
    buckets=SECONDS_BUCKETS, registry=REGISTRY,
)
JOB_QUEUE_WAIT = Histogram(
    "warmfleet_job_queue_wait_seconds", "Time from submission to a slot starting the job.", ["pool"],
    buckets=SECONDS_BUCKETS, registry=REGISTRY,
)
JOB_CPU = Counter("warmfleet_job_cpu_seconds", "CPU time used by jobs (user + system).", ["pool"], registry=REGISTRY)
DEAD_LETTERS = Counter(
    "warmfleet_dead_letters",
    "Entries the pod gave up on: malformed beyond reply, or too many deliveries.",
    ["pool", "reason"], registry=REGISTRY,
)
# Recycles are counted where they are decided: gc_sidecar/recycler.py (warmfleet_gc_recycles_total).
RUNNER_RESTARTS = Counter(
    "warmfleet_runner_restarts", "Slot runner processes restarted after they died.", ["pool"], registry=REGISTRY
)
STREAM_LAG = Gauge(
    "warmfleet_stream_lag", "Entries not yet delivered to the group (pool-wide: use max()).", ["pool"],
    registry=REGISTRY,
)
STREAM_PENDING = Gauge(
    "warmfleet_stream_pending", "Entries delivered but not acknowledged (pool-wide: use max()).", ["pool"],
    registry=REGISTRY,
)
STREAM_OLDEST_PENDING = Gauge(
    "warmfleet_stream_oldest_pending_age_seconds", "Age of the oldest pending entry, 0 if none (pool-wide).",
    ["pool"], registry=REGISTRY,
)
DEAD_LETTER_STREAM = Gauge(
    "warmfleet_dead_letter_stream_length", "Entries in the pool's dead-letter stream (pool-wide).", ["pool"],
    registry=REGISTRY,
)
SESSIONS_OPENED = Counter("warmfleet_sessions_opened", "Sessions this pod opened.", ["pool"], registry=REGISTRY)
SESSIONS_ENDED = Counter(
    "warmfleet_sessions_ended",
    "Sessions this pod ended, by reason (closed, idle_timeout, max_lifetime, lost, killed, died, drained).",
    ["pool", "reason"], registry=REGISTRY,
)
SESSION_CALLS = Counter(
    "warmfleet_session_calls", "Session calls answered, by status.", ["pool", "status"], registry=REGISTRY
)


def job_finished(pool: str, result: "Result") -> None:
    """One result stored and acknowledged."""
    JOBS_COMPLETED.labels(pool, result.status.value).inc()
    if result.duration_s or result.exit_code is not None:  # rejected/failed jobs never ran
        JOB_DURATION.labels(pool).observe(result.duration_s)
        JOB_QUEUE_WAIT.labels(pool).observe(result.queue_wait_s)
        JOB_CPU.labels(pool).inc(max(0.0, result.cpu_s))


class SupervisorCollector:
    """Values read at scrape time from the live supervisor: slots and memory."""

    def __init__(self, sup: Pod) -> None:
        self.sup = sup

    def describe(self):
        return []  # unchecked collector: its families are only known at collect()

    def collect(self):
        pool = self.sup.settings.pool
        snap = self.sup.snapshot()
        for name, key, doc in (
            ("warmfleet_slots", "slots", "Slots in this pod."),
            ("warmfleet_slots_ready", "ready", "Slots with a child forked ahead, waiting for a job."),
            ("warmfleet_slots_busy", "busy", "Slots running a job."),
            ("warmfleet_slots_broken", "broken", "Slots whose runner failed to start."),
        ):
            g = GaugeMetricFamily(name, doc, labels=["pool"])
            g.add_metric([pool], getattr(snap, key))
            yield g
        # Counted by the slots' own fields (executor/delivery.py, slot.py): read, not duplicated.
        for name, key, doc in (
            ("warmfleet_reclaims", "reclaimed", "Entries this pod took over from a silent consumer (XAUTOCLAIM)."),
            ("warmfleet_duplicate_deliveries", "duplicates", "Results already stored by an earlier delivery."),
            ("warmfleet_orphans_reaped", "orphans_reaped", "Leftover processes of jobs reaped by the supervisor."),
        ):
            c = CounterMetricFamily(name, doc, labels=["pool"])
            c.add_metric([pool], getattr(snap, key) if hasattr(snap, key) else getattr(self.sup, key, 0))
            yield c
        for name, value, doc in (
            ("warmfleet_sessions_capacity", snap.sessions_capacity, "Sessions this pod can hold at once."),
            ("warmfleet_sessions_open", snap.sessions_open, "Sessions open on this pod."),
            ("warmfleet_sessions_idle", snap.sessions_idle, "Open sessions not running a call."),
        ):
            g = GaugeMetricFamily(name, doc, labels=["pool"])
            g.add_metric([pool], value)
            yield g
        g = GaugeMetricFamily("warmfleet_draining", "1 while this pod drains.", labels=["pool"])
        g.add_metric([pool], 1 if snap.draining else 0)
        yield g
        mem = GaugeMetricFamily(
            "warmfleet_executor_memory_bytes", "Resident memory of this pod's processes, by kind.",
            labels=["pool", "process"],
        )
        for kind, rss in memory_by_kind(set(self.sup.runner_pids)).items():
            mem.add_metric([pool, kind], rss)
        yield mem


def memory_by_kind(runner_pids: set[int]) -> dict[str, int]:
    """RSS of the supervisor, its runners, and everything else below it: children (spares
    forked ahead and running jobs) and any leftovers not yet reaped."""
    me = psutil.Process()
    totals = {"supervisor": me.memory_info().rss, "runner": 0, "child": 0}
    for proc in me.children(recursive=True):
        try:
            rss = proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # it exited between listing and reading
        totals["runner" if proc.pid in runner_pids else "child"] += rss
    return totals


async def refresh_stream_gauges(r, pool: str) -> None:
    """Lag, pending, oldest pending age and dead letters, from Redis (pool-wide values)."""
    stream = keys.stream(pool)
    try:
        groups = await r.xinfo_groups(stream)
    except redis.exceptions.ResponseError:
        groups = []  # no stream yet
    lag, pending = group_backlog(groups)
    oldest = 0.0
    if pending:
        first = await r.xpending_range(stream, keys.CONSUMER_GROUP, min="-", max="+", count=1)
        if first:
            oldest = entry_age_s(first[0]["message_id"], time.time())
    STREAM_LAG.labels(pool).set(lag or 0)
    STREAM_PENDING.labels(pool).set(pending)
    STREAM_OLDEST_PENDING.labels(pool).set(oldest)
    DEAD_LETTER_STREAM.labels(pool).set(await r.xlen(keys.dead_letters(pool)))


def exposition() -> bytes:
    """The text a scrape returns."""
    return generate_latest(REGISTRY)


class Exporter:
    """The pod's /metrics endpoint plus the task refreshing the stream gauges."""

    def __init__(self, sup: Pod) -> None:
        self.sup = sup
        self.collector = SupervisorCollector(sup)
        self.server = None
        self.port: int | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> "Exporter":
        from prometheus_client import start_http_server

        s = self.sup.settings
        REGISTRY.register(self.collector)
        self._task = asyncio.get_running_loop().create_task(self._refresh_loop(), name="metrics-refresh")
        if s.metrics_port:
            try:
                self.server, _thread = start_http_server(s.metrics_port, addr=s.metrics_addr, registry=REGISTRY)
                self.port = self.server.server_port
                log.info("metrics served", extra={"addr": s.metrics_addr, "port": self.port})
            except OSError as exc:  # never let metrics take a pod down
                log.warning("metrics port unavailable", extra={"port": s.metrics_port, "error": str(exc)})
        return self

    async def _refresh_loop(self) -> None:
        s = self.sup.settings
        while True:
            try:
                await refresh_stream_gauges(self.sup.redis, s.pool)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
                log.debug("stream gauges not refreshed", extra={"error": str(exc)})
            await asyncio.sleep(s.metrics_refresh_s)  # a period, not synchronisation

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        try:
            REGISTRY.unregister(self.collector)
        except KeyError:
            pass


def start(sup: Pod) -> Exporter:
    return Exporter(sup).start()


__all__ = ["Exporter", "REGISTRY", "exposition", "job_finished", "memory_by_kind", "start"]
