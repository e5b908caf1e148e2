"""The SessionHost's handle on the pod's session zygote (executor/lean/session_zygote.py): start
it (the pool's preload imported once), ask it to fork a session or a reset process on
descriptors we pass it, learn the pids and the wait statuses of what it forked.

If the zygote dies, the sessions it forked are not harmed: each is a process of its own
whose channel and pipes lead here, not through the zygote; orphaned, they are reaped by
the supervisor (the subreaper), whose reaper finds them by pid as before. The next spawn
starts a new zygote; one that had been ready is restarted at once, so an open does not
wait for the preload.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from executor.boot import RUNNER_ENV
from executor.lean.jobenv import default_warmup
from executor.lean.session_zygote import BOOT, MAX_PACKET
from warmfleet.contract.messages import (
    Exited, FrameError, Message, SessionConfig, Spawn, Spawned, SpawnFailed, ZygoteBroken, ZygoteInit, ZygoteReady,
    from_packet, to_packet,
)

if TYPE_CHECKING:
    from warmfleet.settings import ExecutorSettings

log = logging.getLogger("warmfleet.sessions")

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY_TIMEOUT_S = 180.0  # the preload (numpy, pandas, matplotlib) takes seconds in gVisor, more under load
SPAWN_TIMEOUT_S = 30.0


class ZygoteGone(OSError):
    """The zygote could not start, or died before it answered."""


class SessionZygote:
    def __init__(self, python: str, init: ZygoteInit, on_exit: Callable[[int, int], None]) -> None:
        """`init`: job_path, preload and warmup of the pool; `on_exit(pid, status)`: a
        process it forked was reaped."""
        self.python, self.init, self.on_exit = python, init, on_exit
        self.pid: int | None = None
        self.pids: set[int] = set()  # zygotes started and not yet reaped by the supervisor
        self.restarts = 0
        self._sock: socket.socket | None = None
        self._ready: asyncio.Future | None = None
        self._starting: asyncio.Task | None = None
        self._pending: dict[int, tuple[asyncio.Future, Callable[[int], None]]] = {}
        self._ids = itertools.count(1)
        self._stopped = False

    @classmethod
    def for_pod(cls, s: "ExecutorSettings", on_exit: Callable[[int, int], None]) -> "SessionZygote":
        """With the pool's job environment, preload and warm-up, as its slot runners have
        (no preload if settings.session_preload is off)."""
        preload = s.session_preload_modules
        warmup = (default_warmup(preload) if s.warmup is None else list(s.warmup)) if preload else []
        return cls(s.python, ZygoteInit(job_path=list(s.job_path), preload=preload, warmup=warmup), on_exit)

    # -- start ------------------------------------------------------------------------
    async def run(self) -> None:
        """The SessionHost's task: start a preloading zygote ahead of the first open (it
        takes seconds); a lean one starts at the first open instead (~0.1 s, and a pod
        that never holds a session does not pay its ~9 MB); stop it when cancelled, at
        the pod's end."""
        try:
            if self.init.preload:
                try:
                    await self.ensure()
                except OSError as exc:
                    log.error("session zygote failed to start", extra={"error": str(exc)})  # each open retries
            await asyncio.Event().wait()
        finally:
            self.stop()

    async def ensure(self) -> None:
        """A ready zygote, started if need be (concurrent callers share one start)."""
        if self._sock is not None and self._ready is not None and self._ready.done() and not self._ready.exception():
            return
        if self._starting is None or self._starting.done():
            self._begin_start()
        assert self._starting is not None
        await asyncio.shield(self._starting)

    def _begin_start(self) -> None:
        self._starting = asyncio.create_task(self._start(), name="session-zygote")
        # Retrieved here: a start nobody awaits (a restart, a stop meanwhile) fails quietly;
        # the next spawn starts again and says why.
        self._starting.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _start(self) -> None:
        if self._stopped:
            raise ZygoteGone("the pod is stopping")
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        os.set_inheritable(child.fileno(), True)
        argv = [self.python, "-S", "-I", "-c", BOOT, SOURCE_ROOT, str(child.fileno())]
        try:
            pid = os.posix_spawn(self.python, argv, RUNNER_ENV)  # an empty environment, as a runner's
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self.pid = pid
        self.pids.add(pid)
        self._sock = parent
        self._ready = loop.create_future()
        parent.setblocking(False)
        loop.add_reader(parent.fileno(), self._on_readable, parent)
        await self._send(self.init, [])
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), READY_TIMEOUT_S)
        except TimeoutError:
            self._gone(parent, "the session zygote did not become ready")
            raise ZygoteGone("the session zygote did not become ready") from None
        except ZygoteGone:
            raise
        log.info("session zygote ready", extra={"pid": pid, "preload": self.init.preload})

    # -- requests ---------------------------------------------------------------------
    async def spawn(self, mode: str, cfg: SessionConfig, fds: list[int], on_pid: Callable[[int], None]) -> int:
        """Fork a session process ("serve") or a cleanup one ("reset") on `fds`
        (channel, stdout, stderr); `on_pid(pid)` runs as soon as the pid is known, before
        any exit of it can be reported. Raises ZygoteGone. A reset is asked again of the
        next zygote if this one died meanwhile: an index whose reset failed is retired."""
        try:
            return await self._spawn_once(mode, cfg, fds, on_pid)
        except ZygoteGone:
            if mode != "reset" or self._stopped:
                raise
            log.warning("session zygote lost during a reset; asking the next one")
            return await self._spawn_once(mode, cfg, fds, on_pid)

    async def _spawn_once(self, mode: str, cfg: SessionConfig, fds: list[int], on_pid: Callable[[int], None]) -> int:
        await self.ensure()
        req = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[req] = (fut, on_pid)
        sock = self._sock
        try:
            await self._send(Spawn(id=req, mode=mode, cfg=cfg.as_dict()), fds)
            return await asyncio.wait_for(asyncio.shield(fut), SPAWN_TIMEOUT_S)
        except TimeoutError:
            # Stuck (stopped, deadlocked): killed and replaced; its sessions live on without it.
            self._pending.pop(req, None)
            if sock is not None:
                self._gone(sock, "the session zygote did not answer a spawn")
            raise ZygoteGone("the session zygote did not answer a spawn") from None
        finally:
            self._pending.pop(req, None)

    async def _send(self, msg: Message, fds: list[int]) -> None:
        sock = self._sock
        if sock is None:
            raise ZygoteGone("the session zygote is gone")
        data = to_packet(msg)
        for _ in range(1000):  # the zygote reads at once unless it is still preloading
            try:
                socket.send_fds(sock, [data], fds)
                return
            except BlockingIOError:
                await asyncio.sleep(0.01)  # a full socket buffer: retry shortly
            except OSError as exc:
                raise ZygoteGone(f"the session zygote is gone: {exc}") from None
        raise ZygoteGone("the session zygote does not read its requests")

    # -- what it says -----------------------------------------------------------------
    def _on_readable(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(MAX_PACKET)
            except BlockingIOError:
                return
            except OSError as exc:
                self._gone(sock, f"control socket failed: {exc}")
                return
            if not data:
                self._gone(sock, "the session zygote exited")
                return
            try:
                msg = from_packet(data)
            except FrameError:
                continue
            if isinstance(msg, Exited):
                self.on_exit(msg.pid, msg.status)
            elif isinstance(msg, (Spawned, SpawnFailed)):
                fut, on_pid = self._pending.get(msg.id, (None, None))  # type: ignore[arg-type]
                if fut is None or fut.done():
                    continue
                if isinstance(msg, Spawned):
                    on_pid(msg.pid)
                    fut.set_result(msg.pid)
                else:
                    fut.set_exception(ZygoteGone(f"the session zygote could not fork: {msg.error}"))
            elif isinstance(msg, ZygoteReady) and self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            elif isinstance(msg, ZygoteBroken) and self._ready is not None and not self._ready.done():
                self._ready.set_exception(ZygoteGone(f"the session zygote could not load the pool's environment: {msg.error}"))

    def _gone(self, sock: socket.socket, why: str) -> None:
        """The zygote stopped answering (it exited, or is killed now): fail what waits on
        it; restart it if it had been serving."""
        if sock is not self._sock:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(sock.fileno())
        sock.close()
        self._sock = None
        was_ready = self._ready is not None and self._ready.done() and not self._ready.exception()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(ZygoteGone(why))
            self._ready.exception()  # retrieved: nobody may be waiting any more
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.set_exception(ZygoteGone(why))
        self._kill()
        if was_ready and not self._stopped:
            log.warning("session zygote lost; restarting it", extra={"reason": why})
            self.restarts += 1
            self._begin_start()

    def reaped(self, pid: int, status: int) -> bool:
        """The supervisor reaped `pid`: True if it was a zygote."""
        if pid not in self.pids:
            return False
        self.pids.discard(pid)
        if pid == self.pid and self._sock is not None:
            self._gone(self._sock, f"the session zygote died (wait status {status})")
        return True

    # -- end --------------------------------------------------------------------------
    def _kill(self) -> None:
        if self.pid is not None and self.pid in self.pids:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """At the pod's end: no restart; the zygote goes (its sessions already ended)."""
        self._stopped = True
        if self._sock is not None:
            self._gone(self._sock, "the pod is stopping")
