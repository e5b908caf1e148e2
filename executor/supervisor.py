"""The pod supervisor: starts N slots, keeps their runners alive, heartbeats the pod's
state to Redis, reaps orphans (it is the sandbox's pid 1 and a child subreaper), and
shuts down in order: stop reading, finish in-flight jobs, acknowledge, exit.

A first SIGTERM/SIGINT drains; a second one, or the drain deadline, kills.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import redis.exceptions

from executor import boot, metrics, running_loop, store
from executor.egress import forward as egress_forward
from executor.lean import procscan
from executor.exitcodes import ExitCode
from executor.pod_state import PodState
from executor.sessions.host import SessionHost
from warmfleet.settings import ExecutorSettings
from executor.slot import Slot
from warmfleet.contract import keys, probe
from warmfleet.plumbing import redis_connect, redis_retry
from warmfleet.contract.snapshot import PodSnapshot, SlotSnapshot, SlotState

log = logging.getLogger("warmfleet.supervisor")

HEARTBEAT_MIN_INTERVAL_S = 0.1
FLIP_PUBLISH_S = 0.5  # a slot's ready <-> busy flip is in the published state within this
RSS_SAMPLE_S = 5.0


class Supervisor(PodState):
    def __init__(self, settings: ExecutorSettings, spawned: list[boot.SpawnedRunner]) -> None:
        """`spawned`: boot.start(settings) made us the subreaper, prepared the workspaces
        and spawned one runner per slot, before this module's imports."""
        redis = redis_connect.connect_async(
            settings.redis_url,
            decode_responses=True,
            health_check_interval=30,
            retry=redis_retry.async_retry(),
            retry_on_error=redis_retry.RETRY_ON,
        )
        super().__init__(settings, redis, store.ResultStore(redis, settings.pool, settings.result_ttl_s))
        self.slots = [Slot(self, i, spawned[i]) for i in range(settings.slots)]
        self._stop_beating = asyncio.Event()
        self.started_at = time.time()
        self._redis_ok_at: float | None = None
        self._rss: tuple[float, int | None] = (0.0, None)
        self.sessions = SessionHost(self)

    # -- lifecycle --------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        running_loop.install(loop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        loop.add_signal_handler(signal.SIGCHLD, self._reap)
        if not await self._connect():
            return ExitCode.REDIS_UNAVAILABLE
        exporter = metrics.start(self)
        if self.settings.egress_enabled and self.settings.egress_gateway:
            assert self.settings.egress_socket is not None
            await egress_forward.start(self.settings.egress_socket, self.settings.egress_gateway)
        slot_tasks = [asyncio.create_task(slot.run(), name=slot.name) for slot in self.slots]
        # Sessions end (or are ended as lost) within the drain like in-flight jobs.
        slot_tasks.append(asyncio.create_task(self.sessions.run(), name="sessions"))
        beat = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        log.info("pod started", extra={"pod_id": self.settings.pod_id, "slots": len(self.slots)})
        await self.draining.wait()
        log.info("draining", extra={"pod_id": self.settings.pod_id})
        code = await self._drain(slot_tasks)
        # Stop the heartbeat and wait for it: one still in flight would re-publish the pod
        # after deregister. An event, not cancel(): in Python 3.11 wait_for() can swallow a
        # cancellation when its inner wait is already done, and the loop never ended.
        self._stop_beating.set()
        self.state_changed.set()
        try:
            await asyncio.wait_for(asyncio.shield(beat), 5.0)
        except TimeoutError:
            beat.cancel()
        exporter.stop()
        await self._deregister()
        self.write_health(stopped=True)
        await self.redis.aclose()
        log.info("pod stopped", extra={"pod_id": self.settings.pod_id, "exit_code": int(code)})
        return code

    async def _connect(self) -> bool:
        deadline = time.monotonic() + 60
        delay = 0.05
        while True:
            try:
                await store.ensure_group(self.redis, self.settings.pool)
                await store.publish_limits(self.redis, self.settings.pool, self.settings.limits)
                return True
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
                if time.monotonic() > deadline or self.draining.is_set():
                    log.error("redis unavailable at start-up", extra={"error": str(exc)})
                    return False
                log.warning("waiting for redis", extra={"error": str(exc)})
                await asyncio.sleep(delay)  # reconnect backoff
                delay = min(delay * 2, 2.0)

    def _on_signal(self, sig: int) -> None:
        if not self.draining.is_set():
            log.info("signal: draining", extra={"signal": signal.Signals(sig).name})
            self.draining.set()
        else:
            log.warning("second signal: stopping now", extra={"signal": signal.Signals(sig).name})
            self.stopping.set()

    async def _drain(self, slot_tasks: list[asyncio.Task]) -> ExitCode:
        self.state_changed.set()
        done_waiting = asyncio.gather(*slot_tasks, return_exceptions=True)
        stop = asyncio.create_task(self.stopping.wait())
        finished, _ = await asyncio.wait(
            {done_waiting, stop}, timeout=self.settings.drain_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        code = ExitCode.OK
        if done_waiting not in finished:
            code = ExitCode.HARD_STOP if stop in finished else ExitCode.DRAIN_TIMEOUT
            log.error("killing in-flight jobs", extra={"reason": code.name})
            for slot in self.slots:
                slot.runner.signal(signal.SIGTERM)  # the runner kills its job's group, then exits
            done_waiting.cancel()
        stop.cancel()
        for slot in self.slots:
            await slot.stop()
        await self._wait_runners_exit(5.0)
        return code

    async def _wait_runners_exit(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(s.runner.exit_status is None and s.runner.pid for s in self.slots):
            if time.monotonic() > deadline:
                for s in self.slots:
                    s.runner.kill()
                deadline = time.monotonic() + timeout
            self.state_changed.clear()
            try:
                await asyncio.wait_for(self.state_changed.wait(), 0.05)
            except TimeoutError:
                self._reap()

    def _reap(self) -> None:
        for pid, status in procscan.reaped_children():
            runner = self.runner_pids.pop(pid, None)
            if runner is None:
                if not self.sessions.reaped(pid, status):
                    self.orphans_reaped += 1
                continue
            runner.exit_status = status
            self.state_changed.set()

    # -- state published for status, probes and the GC sidecar ------------------------
    def snapshot(self) -> PodSnapshot:
        states = [s.state for s in self.slots]
        return PodSnapshot(
            pod_id=self.settings.pod_id,
            slots=len(self.slots),
            ready=sum(st is SlotState.READY for st in states),
            busy=sum(st is SlotState.BUSY for st in states),
            broken=sum(st is SlotState.BROKEN for st in states),
            draining=self.draining.is_set(),
            jobs_done=self.jobs_done,
            tainted=self.tainted,
            dead_letters=self.dead_letters,
            duplicates=self.duplicates,
            reclaimed=sum(s.source.reclaimed for s in self.slots),
            slot_states=tuple(
                SlotSnapshot(slot=s.index, state=s.state.value, runner_pid=s.runner.pid, jobs_done=s.jobs_done)
                for s in self.slots
            ),
            **self.sessions.snapshot(),
            started_at=self.started_at,
            sandbox=_kernel_is_gvisor(),
            sandbox_runtime=self.settings.sandbox_runtime,
            sandbox_version=self.settings.sandbox_version,
            sandbox_platform=self.settings.sandbox_platform,
        )

    async def _heartbeat_loop(self) -> None:
        s = self.settings
        fully_ready_once = False
        while not self._stop_beating.is_set():
            self.state_changed.clear()
            self.slots_flipped = False
            self.write_health()
            snap = self.snapshot()
            try:
                await store.heartbeat(self.redis, s.pool, snap, s.pod_ttl_s)
                command = await self.redis.lpop(keys.control(s.pool, s.pod_id))
                self._redis_ok_at = time.time()
                if command == "drain":
                    log.info("drain requested through redis", extra={"pod_id": s.pod_id})
                    self.draining.set()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("heartbeat failed", extra={"error": str(exc)})
            await self._until_next_beat(time.monotonic())
            # Publish at most every 100 ms (each publish is two round trips through the
            # sandbox; slots restarting together would beat once each). A rate limit, not a
            # sync, and not before the pod has once shown all its slots ready: start-up is
            # announced at once.
            fully_ready_once = fully_ready_once or snap.ready == snap.slots
            if fully_ready_once:
                await asyncio.sleep(HEARTBEAT_MIN_INTERVAL_S)

    async def _until_next_beat(self, beat_at: float) -> None:
        """Until a state change, a flip's FLIP_PUBLISH_S, or the heartbeat period."""
        tick = min(FLIP_PUBLISH_S, self.settings.heartbeat_s)
        while not self._stop_beating.is_set():
            try:
                await asyncio.wait_for(self.state_changed.wait(), tick)
                return
            except TimeoutError:
                pass
            if self.slots_flipped or time.monotonic() - beat_at >= self.settings.heartbeat_s:
                return

    def write_health(self, stopped: bool = False) -> None:
        """The liveness heartbeat: written by this loop, never by jobs (warmfleet/contract/probe.py)."""
        path = self.settings.health_file
        if not path:
            return
        now = time.time()
        if now - self._rss[0] > RSS_SAMPLE_S:  # psutil walks /proc: sample, not every beat
            kinds = metrics.memory_by_kind(set(self.runner_pids))
            # The executor's own memory, not its jobs' (they come and go).
            self._rss = (now, kinds["supervisor"] + kinds["runner"])
        snap = self.snapshot()
        try:
            probe.write(path, {
                "pod_id": snap.pod_id, "slots": snap.slots, "ready": snap.ready, "busy": snap.busy,
                "draining": snap.draining, "redis_ok_at": self._redis_ok_at, "rss_bytes": self._rss[1],
                "stopped": stopped,
            })
        except OSError as exc:
            log.warning("cannot write the health file", extra={"path": path, "error": str(exc)})

    async def _deregister(self) -> None:
        s = self.settings
        try:
            await store.deregister(self.redis, s.pool, s.pod_id)
            consumers = [(keys.stream(s.pool), slot.consumer) for slot in self.slots]
            consumers.append((keys.session_opens(s.pool), self.sessions.consumer))
            for stream, consumer in consumers:
                pending = await self.redis.xpending_range(
                    stream, keys.CONSUMER_GROUP, min="-", max="+", count=1, consumername=consumer
                )
                if not pending:  # never delete a consumer that still owns entries (they are reclaimed)
                    await self.redis.xgroup_delconsumer(stream, keys.CONSUMER_GROUP, consumer)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("could not deregister", extra={"error": str(exc)})


_GVISOR: bool | None = None


def _kernel_is_gvisor() -> bool:
    """gVisor's Sentry reports Linux 4.4.0 (docs/design/field-notes.md)."""
    global _GVISOR
    if _GVISOR is None:
        try:
            with open("/proc/version") as f:
                _GVISOR = f.read().startswith("Linux version 4.4.0")
        except OSError:
            _GVISOR = False
    return _GVISOR
