"""Sessions on one pod: long-lived interpreters that keep an agent's globals and files
across calls (executor/session_proc.py), each as its own uid in its own workspace.

Everything travels through Redis, like jobs:
- opens: the pool-wide stream keys.session_opens, read through the "executors" group by
  pods with free session capacity (COUNT 1, only while one is free), so a request waits
  in the stream, visible as lag, until a pod can take it; one a pod read and died on is
  taken over by another, and answered once (executor/session_opens.py);
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
import json
import logging
import time
from typing import TYPE_CHECKING

import redis.exceptions

from executor import metrics, store
from executor.egress_relay import RELAY_PORT, proxy_environment
from executor.session_egress import PodRelays, SessionEgress
from executor.session_handle import SessionBroke, SessionDied, SessionProcess, classify
from executor.session_zygote_handle import SessionZygote
from executor.session_opens import SessionOpens
from warmfleet import keys
from warmfleet.schema import JOB_ID_RE, EgressReport, Result, Status

if TYPE_CHECKING:
    from executor.pod_state import PodState

log = logging.getLogger("warmfleet.sessions")

WATCH_S = 0.5
RESET_TIMEOUT_S = 10.0
STOP_WAIT_S = 5.0  # how long a drain waits for the loops after their flag and cancel
SEEN_CALLS = 256  # call ids remembered per session for deduplication
# Store a call's result once, publish it to the caller if stored, drop the call entry.
_STORE_CALL = """
local stored = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
if stored and ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[1]) end
redis.call('XDEL', KEYS[2], ARGV[4])
if stored then return 1 end
return 0
"""
# Renew the leases of open sessions: rewrite each record (PX lease) unless it says the
# session ended; a record whose lease lapsed while this pod was starved (a fork bomb
# next door) comes back rather than staying "lost" for a session that lives.
_RENEW = """
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if (not cur) or cjson.decode(cur)['state'] == 'open' then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
  end
end
return 0
"""
LOST_REASONS = frozenset({"lost", "killed", "died", "drained"})


class Session:
    def __init__(self, session_id: str, index: int, proc: SessionProcess, idle_timeout: float, max_lifetime: float,
                 reply_to: str | None) -> None:
        self.id, self.index, self.proc = session_id, index, proc
        self.idle_timeout, self.max_lifetime, self.reply_to = idle_timeout, max_lifetime, reply_to
        self.opened_at = time.time()
        self.started = self.last_active = time.monotonic()
        self.busy, self.calls = False, 0
        self.queue: asyncio.Queue = asyncio.Queue()
        self.seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.worker: asyncio.Task | None = None
        self.ending = self.doomed = False
        self.budget = (10.0, 256 << 20)  # the last call's CPU and memory: background work between calls is held to it
        self.egress: SessionEgress | None = None  # in a pool with egress: its relay, run by us

    def record(self, pod_id: str, state: str = "open", reason: str = "", lost: bool = False) -> str:
        return json.dumps({
            "session_id": self.id, "pod": pod_id, "state": state, "reason": reason, "lost": lost,
            "opened_at": self.opened_at, "idle_timeout": self.idle_timeout, "max_lifetime": self.max_lifetime,
            "calls": self.calls, "index": self.index,
        })


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
        self._store_call = self.redis.register_script(_STORE_CALL)
        self._renew = self.redis.register_script(_RENEW)
        self._wake_id = "$"
        # The loops stop on this flag as well as by a cancel: redis-py swallows a cancel
        # that lands inside a command (the keep_claim hang), so a cancel alone may not end one.
        self.running = True
        # A session's egress needs its own namespace, which needs the privileged start.
        self.egress_on = s.egress_enabled and s.drop_privileges
        self.relays = PodRelays()  # what the sessions' relays hold open together

    # -- what the supervisor sees -----------------------------------------------------
    def snapshot(self) -> dict:
        """The PodSnapshot fields of sessions."""
        return {
            "sessions_capacity": self.capacity,
            "sessions_open": len(self.sessions),
            "sessions_idle": sum(not s.busy for s in self.sessions.values()),
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
                 asyncio.create_task(self._watch_loop(), name="session-watch"),
                 asyncio.create_task(self._lease_loop(), name="session-leases"),
                 asyncio.create_task(self.zygote.run(), name="session-zygote")]
        await self.sup.draining.wait()
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

    # -- opening (executor/session_opens.py reads and answers the requests) -------------
    @property
    def lease_ms(self) -> int:
        return int(self.settings.session_lease_s * 1000)

    def take_index(self) -> int:
        index = self.free.pop(0)
        if not self.free:
            self.has_room.clear()
        return index

    def give_back(self, index: int) -> None:
        """An index taken for an open that is not ours to open (nothing ran in it)."""
        self.free.insert(0, index)
        self.has_room.set()

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
        session.worker = asyncio.create_task(self._serve(session), name=f"session-{session.id}")
        await self._wake()
        metrics.SESSIONS_OPENED.labels(self.pool).inc()
        self.sup.state_changed.set()
        log.info("session opened", extra={"session_id": session.id, "index": session.index})

    def _process(self, index: int) -> SessionProcess:
        s = self.settings
        lim = s.limits
        cfg = {
            "uid": s.session_uid(index), "workspace": s.session_workspace(index), "drop_privileges": s.drop_privileges,
            "isolate_network": s.isolate_job_network,
            "processes": lim.processes, "file_size_bytes": lim.file_size_bytes, "open_files": lim.open_files,
            "max_memory_mb": lim.max_memory_mb, "max_files": lim.max_files,
            "max_output_files_bytes": lim.max_output_files_bytes,
            "job_path": list(s.job_path), "preloaded": bool(s.session_preload_modules),  # the pool's job environment
            # Where its tools find the relay we run in its namespace (session_egress.py).
            "egress_env": proxy_environment(RELAY_PORT) if self.egress_on else None,
        }
        return SessionProcess(cfg, s.kill_grace_s, lim.output_bytes, self.by_pid)

    async def _call_loop(self) -> None:
        """One blocking XREAD over every open session's call stream and this pod's wake stream."""
        last: dict[str, str] = {}
        wake = keys.session_wake(self.pool, self.pod_id)
        while self.running and (not self.sup.draining.is_set() or self.sessions):
            streams = {keys.session_calls(self.pool, sid): last.setdefault(sid, "0-0") for sid in self.sessions}
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
                sid = key[len(keys.session(self.pool, "")):].rsplit(":", 1)[0]
                session = self.sessions.get(sid)
                for entry_id, fields in entries:
                    last[sid] = entry_id
                    if session is not None:
                        session.queue.put_nowait((entry_id, fields))
            # Let the sessions' workers send their calls before this loop blocks again: the
            # next XREAD's round trip then overlaps the calls instead of delaying them.
            await asyncio.sleep(0)

    async def _wake(self) -> None:
        await self.redis.xadd(keys.session_wake(self.pool, self.pod_id), {"w": "1"},
                              maxlen=keys.SESSION_WAKE_MAXLEN, approximate=False)

    # -- one session's calls ----------------------------------------------------------
    async def _serve(self, session: Session) -> None:
        calls_key = keys.session_calls(self.pool, session.id)
        while not session.ending:
            entry_id, fields = await session.queue.get()
            if "close" in fields:
                await self.end(session, "closed", worker=True)
                return
            try:
                call = json.loads(fields["call"])
                call_id = call["call_id"]
                msg = {"t": "call", "code": call["code"], "timeout": float(call["timeout"]),
                       "cpu_time": float(call["cpu_time"]), "memory_mb": int(call["memory_mb"]),
                       "files": call.get("files") or {}}
                reply_to = call.get("reply_to") or session.reply_to
                submitted_at = float(call.get("submitted_at", time.time()))
                if not JOB_ID_RE.match(call_id):
                    raise ValueError("bad call id")
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("malformed session call dropped", extra={"session_id": session.id, "error": str(exc)})
                await self.redis.xdel(calls_key, entry_id)
                continue
            # Delivered twice (a client retried its XADD): it ran once. Only this pod reads
            # the session's stream, so remembering recent ids suffices; the result's SET NX
            # keeps the first answer even past them. No EXISTS round trip per call.
            if call_id in session.seen:
                await self.redis.xdel(calls_key, entry_id)
                continue
            session.seen[call_id] = None
            if len(session.seen) > SEEN_CALLS:
                session.seen.popitem(last=False)
            t_start = time.perf_counter()
            result, end_reason = await self._call(session, call_id, msg, submitted_at)
            t_ran = time.perf_counter()
            await self._store_call(keys=[keys.result(self.pool, call_id), calls_key],
                                   args=[result.to_json(), self.settings.result_ttl_s,
                                         store.reply_channel(self.pool, reply_to), entry_id])
            metrics.SESSION_CALLS.labels(self.pool, result.status.value).inc()
            log.debug("session call done", extra={
                "session_id": session.id, "call_id": call_id, "status": result.status.value,
                "run_ms": round((t_ran - t_start) * 1000, 2), "store_ms": round((time.perf_counter() - t_ran) * 1000, 2),
            })
            if end_reason:
                await self.end(session, end_reason, worker=True)
                return
            if time.monotonic() - session.started > session.max_lifetime:
                await self.end(session, "max_lifetime", worker=True)
                return

    async def _call(self, session: Session, call_id: str, msg: dict, submitted_at: float) -> tuple[Result, str]:
        session.busy = True
        started = time.time()
        base = {"job_id": call_id, "executor": f"{self.consumer}/{session.index}",
                "queue_wait_s": round(max(0.0, started - submitted_at), 6)}
        if session.egress is not None:
            session.egress.begin(call_id)
        try:
            reply, killed_for = await session.proc.call(msg)
        except SessionDied as exc:
            session.doomed = True  # the worker ends it with this reason, not the watch loop
            status = session.proc.exited.result() if session.proc.exited.done() else None
            out, err, out_t, err_t = session.proc.output()
            why = str(exc)
            kind = next((k for k in ("cpu_limit", "memory_limit", "output_limit") if _BUDGET_WORDS[k] in why), None)
            if kind is None and "wall-clock" in why:
                kind = "timeout"
            exit_code = None if status is None else (-(status & 0x7F) if status & 0x7F else (status >> 8) & 0xFF)
            if kind is None and "did not stop" not in why and not isinstance(exc, SessionBroke):
                why = f"the session's process ended during the call (wait status {status})"
            result = Result(status=Status(kind or "error"), exit_code=exit_code, stdout=out, stderr=err,
                            stdout_truncated=out_t, stderr_truncated=err_t, duration_s=round(time.time() - started, 6),
                            error=f"{why}; the session ended", egress=await self._egress_of(session), **base)
            return result, f"lost: {why}"
        finally:
            session.busy = False
            session.last_active = time.monotonic()
            session.calls += 1
            session.budget = (msg["cpu_time"], msg["memory_mb"] << 20)
        status, exit_code, error = classify(reply, killed_for, msg)
        out, err, out_t, err_t = session.proc.output()
        result = Result(status=Status(status), exit_code=exit_code, error=error, stdout=out, stderr=err,
                        stdout_truncated=out_t, stderr_truncated=err_t, duration_s=reply.get("duration_s", 0.0),
                        cpu_s=reply.get("cpu_s", 0.0), max_rss_bytes=reply.get("max_rss_bytes", 0),
                        files=reply.get("files") or {}, files_truncated=bool(reply.get("files_truncated")),
                        egress=await self._egress_of(session), **base)
        return result, ""

    @staticmethod
    async def _egress_of(session: Session) -> EgressReport | None:
        """The call's egress (its connections end with it); None outside egress pools."""
        return await session.egress.finish() if session.egress is not None else None

    # -- watching and ending ----------------------------------------------------------
    async def _lease_loop(self) -> None:
        """Its own task: the watch loop's /proc walks may be slow under a hostile load."""
        every = min(self.settings.heartbeat_s, self.settings.session_lease_s / 4)
        while self.running:
            await asyncio.sleep(every)  # a period, not synchronisation
            if self.running and self.sessions:
                await self._refresh_leases()

    async def _watch_loop(self) -> None:
        while self.running:
            await asyncio.sleep(WATCH_S)  # a period, not synchronisation
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if session.ending or session.busy or session.doomed:
                    continue
                reason = ""
                if session.proc.exited.done():
                    reason = f"died: the session's process exited between calls (wait status {session.proc.exited.result()})"
                elif now - session.last_active > session.idle_timeout:
                    reason = "idle_timeout"
                elif now - session.started > session.max_lifetime:
                    reason = "max_lifetime"
                elif self.settings.drop_privileges:
                    # In a thread: under a hostile load a /proc walk can take seconds, and the
                    # event loop must keep refreshing leases and serving other sessions.
                    cpu, mem = await asyncio.to_thread(
                        session.proc.weigh, now - session.last_active, session.proc.cpu_marks.get(session.proc.pid or -1, 0.0)
                    )
                    if cpu > session.budget[0] or mem > session.budget[1]:
                        reason = "killed: background work between calls went over the last call's CPU or memory budget"
                if reason:
                    await self.end(session, reason)

    async def _refresh_leases(self) -> None:
        live = [x for x in self.sessions.values() if not x.ending]
        try:
            await self._renew(keys=[keys.session(self.pool, x.id) for x in live],
                              args=[int(self.settings.session_lease_s * 1000), *(x.record(self.pod_id) for x in live)])
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("could not refresh session leases", extra={"error": str(exc)})

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
                pipe.set(keys.session(self.pool, session.id), session.record(self.pod_id, "ended", reason, lost),
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
        self.has_room.set()


_BUDGET_WORDS = {"cpu_limit": "CPU-time", "memory_limit": "memory limit", "output_limit": "output cap"}
