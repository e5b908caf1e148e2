"""Sessions on one pod: long-lived interpreters that keep an agent's globals and files
across calls (executor/lean/session_process.py), each as its own uid in its own workspace.

Everything travels through Redis, like jobs:
- opens: the pool-wide stream keys.session_opens, read through the "executors" group by
  pods with free session capacity (COUNT 1, only while one is free), so a request waits
  in the stream, visible as lag, until a pod can take it; one a pod read and died on is
  taken over by another, and answered once (executor/sessions/opens.py);
- calls: one stream per session (keys.session_calls), read with XREAD by its pod alone;
  each call has an id, its Result is stored SET NX under keys.result(call id) and
  published to the caller, so a call delivered twice runs once;
- state: keys.session (JSON), whose TTL while open is a lease this pod refreshes; a
  client that finds it expired (and still gone after a grace: a starved pod renews it
  late) knows the session's pod died (SessionLost).

Sessions hold no job slot: an idle one is a sleeping process. Idle timeout, lifetime, a
close, a call whose budget forced a kill, a process that died, or a drain end a session;
then every process of its uid is killed and its workspace emptied, as after a job.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import redis.exceptions

from executor import metrics
from executor.lean.egress_relay import RELAY_PORT, proxy_environment
from executor.sessions.calls import CallServer
from executor.egress.sessions import PodRelays, SessionEgress
from executor.sessions.handle import SessionDied, SessionProcess
from executor.sessions.opens import SessionOpens
from executor.sessions.state import LOST_REASONS, Session
from executor.sessions.watch import WATCH_S, SessionWatch
from executor.sessions.zygote_handle import SessionZygote
from warmfleet.contract import keys
from warmfleet.contract.messages import SessionConfig
from warmfleet.contract.sessions import STOP_FIELD, WAKE_ENTRY, SessionState

if TYPE_CHECKING:
    from executor.pod_state import PodState

log = logging.getLogger("warmfleet.sessions")

RESET_TIMEOUT_S = 10.0
STOP_WAIT_S = 5.0  # how long a drain waits for the loops after their flag and cancel


class SessionHost:
    def __init__(self, sup: "PodState") -> None:
        self.sup = sup
        self.settings = s = sup.settings
        self.redis = sup.redis
        self.pool, self.pod_id = s.pool, s.pod_id
        self.capacity, self.free = s.sessions, list(range(s.sessions))
        self.sessions: dict[str, Session] = {}
        self.by_pid: dict[int, SessionProcess] = {}
        self.zygote = SessionZygote.for_pod(s, self.reaped)  # forks the sessions, the pool's preload imported
        self.ended: collections.Counter[str] = collections.Counter()
        self.has_room = asyncio.Event()
        self.has_room.set()
        self.changed = asyncio.Event()
        self.consumer = f"{self.pod_id}/sessions"
        self._wake_id = "$"
        # The loops stop on this flag as well as by a cancel: redis-py swallows a cancel
        # that lands inside a command (the keep_claim hang), so a cancel alone may not end one.
        self.running = True
        # A session's egress needs its own namespace, which needs the privileged start.
        self.egress_on = s.egress_enabled and s.drop_privileges
        self.relays = PodRelays()  # what the sessions' relays hold open together
        self.calls = CallServer(self)
        self.watch = SessionWatch(self)
        # A session process forked ahead, as a slot keeps a spare child: an open takes it
        # instead of waiting for a fork (~170 ms of a preloaded zygote). Made once the
        # zygote runs: with the pod if it preloads, else after the pod's first open (an idle
        # lean pod that never holds a session pays for neither).
        self.spare: Session | None = None
        self._spare_task: asyncio.Task | None = None

    # -- what the supervisor sees -----------------------------------------------------
    def snapshot(self) -> dict:
        """The PodSnapshot fields of sessions."""
        return {
            "sessions_capacity": self.capacity,
            "sessions_open": len(self.sessions),
            "sessions_idle": sum(not s.busy for s in self.sessions.values()),
            "sessions_spare": int(self.spare is not None),
            "sessions_ended": dict(self.ended),
        }

    def reaped(self, pid: int, status: int) -> bool:
        """`pid` was reaped (by the supervisor, or by the zygote that forked it): True if ours."""
        proc = self.by_pid.pop(pid, None)
        if proc is None:
            return self.zygote.reaped(pid, status)
        if not proc.exited.done():
            proc.exited.set_result(status)
        return True

    # -- lifecycle --------------------------------------------------------------------
    async def run(self) -> None:
        if self.capacity == 0:
            return
        tasks = [asyncio.create_task(SessionOpens(self).run(), name="session-opens"),
                 asyncio.create_task(self._call_loop(), name="session-calls"),
                 asyncio.create_task(self.watch.run_checks(), name="session-watch"),
                 asyncio.create_task(self.watch.run_leases(), name="session-leases"),
                 asyncio.create_task(self.zygote.run(), name="session-zygote")]
        if self.settings.session_preload_modules:
            self.keep_spare()
        await self.sup.draining.wait()
        await self.drop_spare()
        deadline = time.monotonic() + min(self.settings.session_drain_s, max(0.0, self.settings.drain_timeout_s - 5))
        while self.sessions and time.monotonic() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), WATCH_S)
            except TimeoutError:
                pass
        for session in list(self.sessions.values()):
            await self.end(session, "drained: the executor was recycled or scaled in before the session ended")
        await self.stop_loops(tasks)

    async def stop_loops(self, tasks: list[asyncio.Task]) -> None:
        """Flag, cancel, then a bounded wait: never an unbounded await on a cancelled loop."""
        self.running = False
        for task in tasks:
            task.cancel()
        _, left = await asyncio.wait(tasks, timeout=STOP_WAIT_S)
        if left:
            log.error("session loops did not stop", extra={"loops": sorted(t.get_name() for t in left)})

    # -- opening (executor/sessions/opens.py reads and answers the requests) -------------
    @property
    def lease_ms(self) -> int:
        return int(self.settings.session_lease_s * 1000)

    def take_index(self) -> int:
        index = self.free.pop(0)
        self._room_changed()
        return index

    def give_back(self, index: int) -> None:
        """An index taken for an open that is not ours to open (nothing ran in it)."""
        self.free.insert(0, index)
        self._room_changed()

    def _room_changed(self) -> None:
        """Room for an open: a free index, a spare, or a spare on its way."""
        if self.free or self.spare is not None or (self._spare_task is not None and not self._spare_task.done()):
            self.has_room.set()
        else:
            self.has_room.clear()

    # -- the spare ----------------------------------------------------------------------
    async def session_for(self, sid: str, idle: float, life: float, reply_to: str | None) -> tuple[Session, bool]:
        """The session an open gets, and whether it is started already (a spare)."""
        if self.spare is None and not self.free and self._spare_task is not None:
            await asyncio.shield(self._spare_task)  # the only room left is the spare being made
        spare, self.spare = self.spare, None
        if spare is not None and not spare.proc.exited.done():
            self._room_changed()
            self.keep_spare()
            return spare.adopt(sid, idle, life, reply_to), True
        if spare is not None:  # it died while it waited: its index is freed by the reaper's path
            await self.discard(spare)
        index = self.take_index()
        self.keep_spare()
        return self.new_session(sid, index, idle, life, reply_to), False

    def keep_spare(self) -> None:
        if (not self.settings.session_spare or self.spare is not None or not self.free or not self.running
                or self.sup.draining.is_set() or (self._spare_task is not None and not self._spare_task.done())):
            return
        self._spare_task = asyncio.create_task(self._make_spare(), name="session-spare")
        self._room_changed()

    async def _make_spare(self) -> None:
        session = self.new_session("", self.take_index(), 1.0, 1.0, None)
        try:
            await self.start(session)
        except (SessionDied, OSError) as exc:  # start() discarded it and freed its index
            log.warning("could not fork a spare session", extra={"error": str(exc)})
            return
        finally:
            self._spare_task = None
        if not self.running or self.sup.draining.is_set():
            await self.discard(session)
            return
        self.spare = session
        self._room_changed()
        self.sup.state_changed.set()

    async def drop_spare(self) -> None:
        task, self._spare_task = self._spare_task, None
        if task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, STOP_WAIT_S)
        spare, self.spare = self.spare, None
        if spare is not None:
            await self.discard(spare)

    def new_session(self, sid: str, index: int, idle: float, life: float, reply_to: str | None) -> Session:
        return Session(sid, index, self._process(index), idle, life, reply_to)

    async def start(self, session: Session) -> None:
        """Its process, and in an egress pool its relay; raises SessionDied or OSError
        after discarding what was started."""
        proc = session.proc
        try:
            await proc.start(self.zygote)
            if self.egress_on:
                assert proc.pid is not None
                session.egress = await SessionEgress.open(self.settings, proc.pid, proc.uid, self.relays)
        except (SessionDied, OSError):
            await self.discard(session)
            raise

    async def discard(self, session: Session) -> None:
        """A session started but never admitted (its start failed, or another pod answered
        its open): kill it and free its index."""
        if session.egress is not None:
            session.egress.close()
        await asyncio.to_thread(session.proc.kill)
        await self.release(session.index, session.proc)

    async def admit(self, session: Session) -> None:
        """An opened and answered session starts serving calls."""
        self.sessions[session.id] = session
        session.worker = asyncio.create_task(self.calls.serve(session), name=f"session-{session.id}")
        await self._wake()
        metrics.SESSIONS_OPENED.labels(self.pool).inc()
        self.sup.state_changed.set()
        log.info("session opened", extra={"session_id": session.id, "index": session.index})

    def _process(self, index: int) -> SessionProcess:
        s = self.settings
        lim = s.limits
        uid = s.session_uid(index)
        cfg = SessionConfig(
            uid=uid, gid=uid, workspace=s.session_workspace(index), drop_privileges=s.drop_privileges,
            isolate_network=s.isolate_job_network,
            processes=lim.processes, file_size_bytes=lim.file_size_bytes, open_files=lim.open_files,
            max_memory_mb=lim.max_memory_mb, max_files=lim.max_files,
            max_output_files_bytes=lim.max_output_files_bytes,
            job_path=list(s.job_path), preloaded=bool(s.session_preload_modules),  # the pool's job environment
            # Where its tools find the relay we run in its namespace (executor/egress/sessions.py).
            egress_env=proxy_environment(RELAY_PORT) if self.egress_on else None,
        )
        return SessionProcess(cfg, s.kill_grace_s, lim.output_bytes, self.by_pid)

    async def _call_loop(self) -> None:
        """One blocking XREAD over every open session's call stream and this pod's wake stream."""
        last: dict[str, str] = {}
        wake = keys.session_wake(self.pool, self.pod_id)
        while self.running and (not self.sup.draining.is_set() or self.sessions):
            sid_of = {keys.session_calls(self.pool, sid): sid for sid in self.sessions}
            streams = {key: last.setdefault(sid, "0-0") for key, sid in sid_of.items()}
            for sid in list(last):
                if sid not in self.sessions:
                    del last[sid]
            streams[wake] = self._wake_id
            try:
                resp = await self.redis.xread(streams, count=16, block=self.settings.block_ms)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("redis unavailable; retrying", extra={"error": str(exc)})
                await asyncio.sleep(1.0)  # reconnect backoff
                continue
            for key, entries in resp or []:
                if key == wake:
                    self._wake_id = entries[-1][0]
                    continue
                sid = sid_of[key]
                session = self.sessions.get(sid)
                for entry_id, fields in entries:
                    last[sid] = entry_id
                    if session is not None and STOP_FIELD in fields:
                        self._stop_call(session, fields[STOP_FIELD], key, entry_id)
                    elif session is not None:
                        session.queue.put_nowait((entry_id, fields))
            # Let the sessions' workers send their calls before this loop blocks again: the
            # next XREAD's round trip then overlaps the calls instead of delaying them.
            await asyncio.sleep(0)

    def _stop_call(self, session: Session, call_id: str, calls_key: str, entry_id: str) -> None:
        """A client asked to stop one of its calls (it went away): read here, beside the
        calls, so it reaches a call that is running. The session goes on."""
        if len(session.stops) < 64:
            session.stops.add(call_id)
        if session.current_call == call_id:
            session.proc.stop_requested.set()
        asyncio.ensure_future(self.redis.xdel(calls_key, entry_id))

    async def _wake(self) -> None:
        await self.redis.xadd(keys.session_wake(self.pool, self.pod_id), WAKE_ENTRY,
                              maxlen=keys.SESSION_WAKE_MAXLEN, approximate=False)

    # -- ending ------------------------------------------------------------------------
    async def end(self, session: Session, reason: str, worker: bool = False) -> None:
        """Kill everything of the session, reset its workspace, record why it ended."""
        if session.ending:
            return
        session.ending = True
        self.sessions.pop(session.id, None)
        if session.worker is not None and not worker:
            session.worker.cancel()
        label = reason.split(":", 1)[0]
        lost = label in LOST_REASONS
        if session.egress is not None:
            session.egress.close()
        await asyncio.to_thread(session.proc.kill)
        self.ended[label] += 1
        metrics.SESSIONS_ENDED.labels(self.pool, label).inc()
        # Recorded before the cleanup: its lease is no longer refreshed, and a client must
        # read why it ended, not find it gone.
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(keys.session(self.pool, session.id), session.record(self.pod_id, SessionState.ENDED, reason, lost),
                         ex=self.settings.session_ended_ttl_s)
                pipe.delete(keys.session_calls(self.pool, session.id))
                await pipe.execute()
            await self._wake()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("could not record a session's end", extra={"session_id": session.id, "error": str(exc)})
        await self.release(session.index, session.proc)
        self.changed.set()
        self.sup.state_changed.set()
        log.info("session ended", extra={"session_id": session.id, "reason": reason, "calls": session.calls})

    async def release(self, index: int, proc: SessionProcess) -> None:
        """Wait for the process, then reset the uid and workspace (as that uid) before
        the index is free again."""
        if proc.pid is not None:
            try:
                await asyncio.wait_for(asyncio.shield(proc.exited), RESET_TIMEOUT_S)
            except TimeoutError:
                log.error("session process survived SIGKILL", extra={"index": index})
        proc.close()
        reset = self._process(index)
        try:
            await reset.spawn(self.zygote, "reset")
            reset.close()
            status = await asyncio.wait_for(asyncio.shield(reset.exited), RESET_TIMEOUT_S)
            if status != 0:
                log.error("session reset failed; index retired", extra={"index": index, "status": status})
                return  # never reuse a uid/workspace that could not be cleaned
        except (OSError, TimeoutError) as exc:
            log.error("session reset failed; index retired", extra={"index": index, "error": str(exc)})
            return
        self.free.append(index)
        self._room_changed()
        # No new spare here: one is forked when an open takes the spare. A freed index
        # stays idle until an open needs it, and a spare that failed to start is not
        # retried in a loop (a uid a fork bomb left busy fails each start).

