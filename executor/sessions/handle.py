"""The supervisor's handle on one session process (executor/lean/session_process.py): have the
pod's session zygote fork it, run one call under its budgets, kill it and everything of
its uid, reset its workspace.

Budgets of a call: the wall clock is a SIGALRM sent from here (an interrupt the session
survives) plus a SIGKILL at the deadline + grace; CPU and memory are weighed over
every process of the session uid (procscan.TreeWeigher, as a job's) every TREE_CHECK_S,
past the budget the call is interrupted, and killed with the session if it does not
stop. Output is read from the session's stdout/stderr pipes, capped per stream (the
job's OutputCapture); the call's status is the job's verdict (executor/lean/verdict.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from executor.lean import cell, procscan
from executor.lean.capture import OutputCapture
from executor.lean.verdict import CALL_WORDS, Overrun, verdict
from warmfleet.contract import messages
from warmfleet.contract.messages import (
    Call, CallOutcome, FrameError, Message, SessionBroken, SessionConfig, SessionReady, Status,
)

if TYPE_CHECKING:
    from executor.sessions.zygote_handle import SessionZygote

TREE_CHECK_S = 0.25
READY_TIMEOUT_S = 15.0
INTERRUPT_GRACE_S = 2.0  # to take an interrupt, the interpreter must be scheduled: slow under load


class SessionDied(Exception):
    """The session process is gone (killed, crashed, or never became ready)."""


class SessionBroke(SessionDied):
    """The session wrote what its channel's protocol does not allow (a malformed,
    oversized or unexpected frame): its own code can write to the channel, so this ends
    the session, never the supervisor's reading of it."""


class CallNotStopped(SessionDied):
    """A call went over a budget and did not stop when interrupted: its session's
    process was killed. `overrun`: the budget."""

    def __init__(self, overrun: Overrun) -> None:
        super().__init__(f"a call did not stop at its {overrun.value}: the session's process was killed")
        self.overrun = overrun


# The statuses a session's own verdict can give a call (session_process.py): a budget
# the supervisor stopped it for overrules them.
REPLY_STATUSES = frozenset({Status.OK.value, Status.ERROR.value, Status.TIMEOUT.value, Status.MEMORY_LIMIT.value})


class SessionProcess:
    def __init__(self, cfg: SessionConfig, grace_s: float, output_cap: int, registry: dict[int, "SessionProcess"]) -> None:
        """`registry`: pid -> process, where the supervisor's reaper finds whose exit it reaped."""
        self.cfg, self.grace_s, self.output_cap = cfg, grace_s, output_cap
        # The largest reply a session can owe us: its out/ files (base64) and some room.
        self.max_frame = min(messages.MAX_FRAME, cfg.max_output_files_bytes * 4 // 3 + cell.RECORDS_BYTES + (1 << 20))
        self.seq = 0  # each call's number, echoed in its reply: a stray frame is not taken for one
        self.registry = registry
        self._sock: socket.socket | None = None
        self.uid: int = cfg.uid
        self.pid: int | None = None
        self.exited = asyncio.get_running_loop().create_future()  # wait status, set by the reaper
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._out: dict[str, int] = {}
        self._capture: OutputCapture | None = None  # the running call's output
        # A streaming call's output as it is written (stream name, bytes), within the cap
        self.on_output: Callable[[str, bytes], None] | None = None
        # Set when the call's client asked to stop it (it went away): interrupted like a timeout
        self.stop_requested = asyncio.Event()
        self.cpu_marks: dict[int, float] = {}  # pid -> CPU seconds already accounted for
        self.tree = procscan.TreeWeigher(self.uid, -1, marks=self.cpu_marks)  # the session uid's processes

    # -- start ------------------------------------------------------------------------
    async def spawn(self, zygote: "SessionZygote", mode: str = "serve") -> None:
        """Have the pod's zygote fork the session process (or, mode "reset", a process
        that only cleans the uid and workspace up) on a channel and pipes of ours."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            await zygote.spawn(mode, self.cfg, [child.fileno(), out_w, err_w], self._forked)
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            parent.close()
            raise
        finally:
            child.close()
            os.close(out_w)
            os.close(err_w)
        self._sock = parent
        self._out = {"stdout": out_r, "stderr": err_r}

    def _forked(self, pid: int) -> None:
        self.pid = pid
        self.registry[pid] = self  # before any await: its exit may be reported next

    async def start(self, zygote: "SessionZygote") -> None:
        """Spawn and wait for "ready"; raises SessionDied (or ZygoteGone, an OSError)."""
        await self.spawn(zygote)
        loop = asyncio.get_running_loop()
        for name, fd in self._out.items():
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._on_output, name, fd)
        self._reader, self._writer = await asyncio.open_unix_connection(sock=self._sock)
        try:
            msg = await asyncio.wait_for(self._recv(), READY_TIMEOUT_S)
        except TimeoutError:
            raise SessionDied("the session process did not become ready") from None
        if not isinstance(msg, SessionReady):
            raise SessionDied(msg.error if isinstance(msg, SessionBroken) else f"session process said {msg!r:.200}")
        # CPU spent booting is nobody's call's
        self.cpu_marks.clear()
        if self.cfg.drop_privileges:
            self.cpu_marks.update((pid, cpu) for pid, _, cpu, _ in procscan.usage_of(self.uid))
        self.tree.main_pid = self.pid or -1
        # Preloaded: what it maps of the zygote's modules is not a call's memory (as a job child's rss_base)
        self.tree.main_base = procscan.rss_bytes(self.pid) if self.cfg.preloaded else 0

    # -- one call ---------------------------------------------------------------------
    async def call(self, call: Call) -> tuple[CallOutcome, Overrun | None]:
        """Run one call; returns (the session's reply, the budget it was stopped for or
        None). Raises SessionDied if the process had to be killed or died."""
        assert self._writer is not None
        capture = self._capture = OutputCapture(self.output_cap)
        stop_wait = asyncio.ensure_future(self.stop_requested.wait())
        killed_for: Overrun | None = None
        started = time.monotonic()
        wall = started + call.timeout  # then SIGALRM: the session's own timer cost two ~75 us syscalls a call
        deadline = wall + self.grace_s
        self.seq += 1
        self._writer.write(messages.encode(call.replace(seq=self.seq)))
        reply_task = asyncio.ensure_future(self._recv())
        interrupted_at: float | None = None
        try:
            while True:
                now = time.monotonic()
                hard = min(deadline, (interrupted_at + INTERRUPT_GRACE_S) if interrupted_at else deadline)
                wait = max(0.0, min(TREE_CHECK_S, hard - now, (wall - now) if wall else TREE_CHECK_S))
                done, _ = await asyncio.wait(
                    {reply_task, self.exited, stop_wait}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if reply_task in done:
                    reply = checked_reply(reply_task.result(), self.seq)
                    break
                if self.exited in done:
                    raise SessionDied("the session process died during a call")
                now = time.monotonic()
                if now >= hard:
                    await asyncio.to_thread(self.kill)
                    raise CallNotStopped(killed_for or Overrun.TIMEOUT)
                if wall and now >= wall:
                    wall = 0.0
                    self.signal(signal.SIGALRM)  # the session interrupts the call: a timeout
                if killed_for is None:
                    if self.stop_requested.is_set():
                        killed_for = Overrun.STOPPED
                    elif any(capture.truncated.values()):
                        killed_for = Overrun.OUTPUT
                    else:
                        tree = self.tree
                        await asyncio.to_thread(tree.weigh, now - started)
                        if tree.cpu_s > call.cpu_time:
                            killed_for = Overrun.CPU
                        elif tree.memory_bytes > call.memory_mb << 20:
                            killed_for = Overrun.MEMORY
                        elif tree.processes >= self.cfg.processes:
                            # At the process cap: a fork bomb, whose copies inside gVisor
                            # starve the whole pod (leases included) if left running.
                            killed_for = Overrun.PROCESSES
                    if killed_for is not None:
                        # Its other processes first: they are what runs away, and killed
                        # they free the CPU the interpreter needs to take the interrupt.
                        await asyncio.to_thread(self.kill_others)
                        interrupted_at = time.monotonic()
                        self.signal(signal.SIGALRM)
        finally:
            if not reply_task.done():
                reply_task.cancel()
            stop_wait.cancel()
        self._drain_output()
        if killed_for is not None or reply.status == Status.TIMEOUT.value:  # interrupted
            await asyncio.to_thread(self.kill_others)
        if self.pid is not None:
            self.cpu_marks[self.pid] = float(reply.cpu_total_s)
        return reply, killed_for

    def output(self) -> OutputCapture:
        """The last call's output (taken: output between calls belongs to no call)."""
        capture, self._capture = self._capture or OutputCapture(self.output_cap), None
        return capture

    def kill_others(self) -> None:
        """SIGKILL every process of the session uid but the interpreter: what a call that
        hit a budget started (a fork bomb's copies) must not outlive the call. The group
        is stopped first, so no copy forks a new one while we kill (inside gVisor a fork
        bomb left running starves the whole pod); killing repeats until three scans in a
        row find nothing (a copy that left the group with setsid was not stopped)."""
        if not self.cfg.drop_privileges or self.pid is None:
            return
        try:
            os.killpg(self.pid, signal.SIGSTOP)
        except (ProcessLookupError, PermissionError):
            pass
        clean, deadline = 0, time.monotonic() + 2.0
        while clean < 3 and time.monotonic() < deadline:
            others = [pid for pid, _, _, _ in procscan.usage_of(self.uid) if pid != self.pid]
            clean = 0 if others else clean + 1
            for pid in others:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.005)  # the gap between scans lets a task being born show up
        try:
            os.killpg(self.pid, signal.SIGCONT)
        except (ProcessLookupError, PermissionError):
            pass

    # -- output -----------------------------------------------------------------------
    def _on_output(self, name: str, fd: int) -> None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(fd)
            return
        if self._capture is not None:  # between calls: a background thread's output belongs to no call
            self._take(name, data)

    def _take(self, name: str, data: bytes) -> None:
        """Keep it within the cap; a streaming call's hook sees what was kept, as it comes."""
        assert self._capture is not None
        before = len(self._capture.buffers[name])
        self._capture.add(name, data)
        kept = len(self._capture.buffers[name]) - before
        if kept and self.on_output is not None:
            self.on_output(name, data[:kept])

    def _drain_output(self) -> None:
        """What the session wrote before its reply is in the pipes: take it now."""
        if self._capture is None:
            return
        for name, fd in self._out.items():
            self._capture.drain(name, fd, self._take)

    async def _recv(self) -> Message:
        assert self._reader is not None
        try:
            (size,) = messages.HEADER.unpack(await self._reader.readexactly(messages.HEADER.size))
            if size > self.max_frame:
                raise SessionBroke(f"the session sent a frame of {size} bytes (a reply is at most {self.max_frame})")
            body = await self._reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError, struct.error) as exc:
            raise SessionDied(str(exc) or "channel closed") from exc
        try:
            frame = messages.decode_body(body)
        except ValueError as exc:
            raise SessionBroke(f"the session sent a malformed frame: {exc}") from None
        if not isinstance(frame, dict):
            raise SessionBroke(f"the session sent a frame that is not an object: {type(frame).__name__}")
        try:
            return messages.from_frame(frame, "session")
        except FrameError as exc:
            raise SessionBroke(f"the session sent an unexpected frame: {str(exc)[:200]}") from None

    # -- end --------------------------------------------------------------------------
    def signal(self, sig: int) -> None:
        if self.pid is not None and not self.exited.done():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the session's group and every process of its uid (the reset that
        follows, as that uid, makes sure over several /proc scans)."""
        if self.pid is not None:
            try:
                os.killpg(self.pid, signal.SIGSTOP)  # no fork while we kill
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.cfg.drop_privileges:
            for pid, _, _, _ in procscan.usage_of(self.uid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._sock is not None and self._writer is None:
            self._sock.close()
        self._sock = None
        for fd in self._out.values():
            loop.remove_reader(fd)
            try:
                os.close(fd)
            except OSError:
                pass
        self._out = {}
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def checked_reply(reply: Message, seq: int) -> CallOutcome:
    """The reply to call `seq`, or SessionBroke: anything else on the channel (another
    message, a stray or forged frame, a field of the wrong type) ends the session."""
    if not isinstance(reply, CallOutcome) or reply.seq != seq:
        raise SessionBroke(f"the session sent an unexpected frame instead of call {seq}'s reply "
                           f"({type(reply).__name__}, seq={str(getattr(reply, 'seq', None))[:40]!r})")
    if (reply.status not in REPLY_STATUSES or reply.mistyped()
            or not all(isinstance(v, str) for v in reply.files.values()) or not _cell_ok(reply)):
        raise SessionBroke(f"the session sent a malformed reply to call {seq}")
    return reply


def _cell_ok(reply: CallOutcome) -> bool:
    """The cell's part of a reply (executor/lean/cell.py Cell.summary), its types already
    checked: our session process keeps its caps itself, so outputs past them mean the
    code wrote the frame."""
    outputs = reply.outputs
    return (len(outputs) <= cell.MAX_OUTPUTS and all(messages.valid_output(o) for o in outputs)
            and sum(cell.output_size(o) for o in outputs) <= cell.CELL_BYTES + cell.OUTPUT_BYTES)


def call_verdict(call: Call, reply: CallOutcome, killed_for: Overrun | None) -> CallOutcome:
    """The reply, its status overruled by the budget the call was stopped for, if any."""
    if killed_for is None:
        return reply
    status, exit_code, error = verdict(call, killed_for, reply.exit_code, words=CALL_WORDS)
    return reply.replace(status=status.value, exit_code=exit_code, error=error)  # type: ignore[return-value]
