"""Watching a pod's open sessions between calls: their leases (keys.session, PX) renewed
on a period of their own, and every WATCH_S each idle session checked for a dead process,
its idle timeout, its lifetime, and background work over the last call's CPU or memory
budget (one /proc scan for all of them: a scan per session cost the pod's slots their
CPU with 32 sessions open)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

import redis.exceptions

from executor.lean import procscan
from executor.sessions.state import Session
from warmfleet.contract import keys
from warmfleet.contract import lua

log = logging.getLogger("warmfleet.sessions")

WATCH_S = 0.5
_RENEW = lua.script("session_lease_renew")  # warmfleet/contract/lua/session_lease_renew.lua


class Host(Protocol):
    """What watching needs of the pod's SessionHost (executor/sessions/host.py)."""

    settings: Any  # ExecutorSettings
    redis: Any
    pool: str
    pod_id: str
    running: bool
    sessions: dict[str, Session]

    async def end(self, session: Session, reason: str, worker: bool = False) -> None: ...


class SessionWatch:
    def __init__(self, host: Host) -> None:
        self.host = host
        self._renew = host.redis.register_script(_RENEW)

    async def run_leases(self) -> None:
        """Its own task: the watch loop's /proc walks may be slow under a hostile load."""
        every = min(self.host.settings.heartbeat_s, self.host.settings.session_lease_s / 4)
        while self.host.running:
            await asyncio.sleep(every)  # a period, not synchronisation
            if self.host.running and self.host.sessions:
                await self.refresh_leases()

    async def run_checks(self) -> None:
        while self.host.running:
            await asyncio.sleep(WATCH_S)  # a period, not synchronisation
            await self.check()

    async def check(self) -> None:
        now = time.monotonic()
        idle = [x for x in self.host.sessions.values() if not (x.ending or x.busy or x.doomed)]
        ended: list[tuple[Session, str]] = []
        weigh: list[Session] = []
        for session in idle:
            if session.proc.exited.done():
                ended.append((session, f"died: the session's process exited between calls (wait status {session.proc.exited.result()})"))
            elif now - session.last_active > session.idle_timeout:
                ended.append((session, "idle_timeout"))
            elif now - session.started > session.max_lifetime:
                ended.append((session, "max_lifetime"))
            elif self.host.settings.drop_privileges:
                weigh.append(session)
        if weigh:
            # In a thread: under a hostile load a /proc walk can take seconds, and the event
            # loop must keep refreshing leases and serving other sessions.
            usage = await asyncio.to_thread(procscan.usage_by_uid, {x.proc.uid for x in weigh})
            for session in weigh:
                tree = session.proc.tree
                tree.weigh(now - session.last_active, usage.get(tree.uid, []))
                if tree.cpu_s > session.budget[0] or tree.memory_bytes > session.budget[1]:
                    ended.append((session, "killed: background work between calls went over the last call's CPU or memory budget"))
        for session, reason in ended:
            if not (session.ending or session.busy):  # a call may have started meanwhile: it is the call's now
                await self.host.end(session, reason)

    async def refresh_leases(self) -> None:
        live = [x for x in self.host.sessions.values() if not x.ending]
        try:
            await self._renew(keys=[keys.session(self.host.pool, x.id) for x in live],
                              args=[int(self.host.settings.session_lease_s * 1000), *(x.record(self.host.pod_id) for x in live)])
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("could not refresh session leases", extra={"error": str(exc)})
