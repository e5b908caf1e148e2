"""The supervisor's handle on one session process (executor/lean/session_process.py): have the
pod's session zygote fork it, run one call under its budgets, kill it and everything of
its uid, reset its workspace.

Budgets of a call: the wall clock is a SIGALRM sent from here (an interrupt the session
survives) plus a SIGKILL at the deadline + grace; CPU and memory are weighed over
every process of the session uid (executor/lean/procscan.py) every TREE_CHECK_S, past the
budget the call is interrupted, and killed with the session if it does not stop.
Output is read from the session's stdout/stderr pipes, capped per stream.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import time
from typing import TYPE_CHECKING

from executor.lean import cell, procscan
from warmfleet.contract import messages

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


REPLY_STATUSES = frozenset({"ok", "error", "interrupted", "memory_limit"})  # what session_proc answers


class SessionProcess:
    def __init__(self, cfg: dict, grace_s: float, output_cap: int, registry: dict[int, "SessionProcess"]) -> None:
        """`registry`: pid -> process, where the supervisor's reaper finds whose exit it reaped."""
        self.cfg, self.grace_s, self.output_cap = cfg, grace_s, output_cap
        # The largest reply a session can owe us: its out/ files (base64) and some room.
        self.max_frame = min(messages.MAX_FRAME, cfg["max_output_files_bytes"] * 4 // 3 + cell.RECORDS_BYTES + (1 << 20))
        self.seq = 0  # each call's number, echoed in its reply: a stray frame is not taken for one
        self.registry = registry
        self._sock: socket.socket | None = None
        self.uid: int = cfg["uid"]
        self.pid: int | None = None
        self.exited = asyncio.get_running_loop().create_future()  # wait status, set by the reaper
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._out: dict[str, int] = {}
        self._capture: dict[str, bytearray] | None = None
        self._over_cap = False
        self.cpu_marks: dict[int, float] = {}  # pid -> CPU seconds already accounted for
        self.rss_base: dict[int, int] = {}  # pid -> its parent's RSS when first seen (shared pages)
        self.main_base = 0  # the session process's RSS when ready, if preloaded
        self.processes = 0  # of the session uid, at the last weighing

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
        if msg.get("t") != "ready":
            raise SessionDied(msg.get("error") or f"session process said {msg!r}")
        # CPU spent booting is nobody's call's
        self.cpu_marks = {pid: cpu for pid, _, cpu, _ in procscan.usage_of(self.uid)} if self.cfg["drop_privileges"] else {}
        # Preloaded: what it maps of the zygote's modules is not a call's memory (as a job child's rss_base)
        self.main_base = procscan.rss_bytes(self.pid) if self.cfg.get("preloaded") else 0

    # -- one call ---------------------------------------------------------------------
    async def call(self, msg: dict) -> tuple[dict, str | None]:
        """Run one call; returns (the session's reply, why it was stopped or None).
        Raises SessionDied if the process had to be killed or died."""
        assert self._writer is not None
        self._capture = {"stdout": bytearray(), "stderr": bytearray()}
        self._over_cap = False
        killed_for: str | None = None
        started = time.monotonic()
        wall = started + msg["timeout"]  # then SIGALRM: the session's own timer cost two ~75 us syscalls a call
        deadline = wall + self.grace_s
        self.seq += 1
        self._writer.write(messages.encode_frame({**msg, "seq": self.seq}))
        reply_task = asyncio.ensure_future(self._recv())
        main_cpu0 = self.cpu_marks.get(self.pid or -1, 0.0)
        interrupted_at: float | None = None
        try:
            while True:
                now = time.monotonic()
                hard = min(deadline, (interrupted_at + INTERRUPT_GRACE_S) if interrupted_at else deadline)
                wait = max(0.0, min(TREE_CHECK_S, hard - now, (wall - now) if wall else TREE_CHECK_S))
                done, _ = await asyncio.wait(
                    {reply_task, self.exited}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if reply_task in done:
                    reply = _checked_reply(reply_task.result(), self.seq)
                    break
                if self.exited in done:
                    raise SessionDied("the session process died during a call")
                now = time.monotonic()
                if now >= hard:
                    await asyncio.to_thread(self.kill)
                    why = killed_for or "timeout"
                    raise SessionDied(f"a call did not stop at its {_BUDGET_NAMES[why]}: the session's process was killed")
                if wall and now >= wall:
                    wall = 0.0
                    self.signal(signal.SIGALRM)  # the session interrupts the call: a timeout
                if killed_for is None:
                    if self._over_cap:
                        killed_for = "output_limit"
                    else:
                        cpu, mem = await asyncio.to_thread(self.weigh, now - started, main_cpu0)
                        if cpu > msg["cpu_time"]:
                            killed_for = "cpu_limit"
                        elif mem > msg["memory_mb"] << 20:
                            killed_for = "memory_limit"
                        elif self.processes >= self.cfg["processes"]:
                            # At the process cap: a fork bomb, whose copies inside gVisor
                            # starve the whole pod (leases included) if left running.
                            killed_for = "processes"
                    if killed_for is not None:
                        # Its other processes first: they are what runs away, and killed
                        # they free the CPU the interpreter needs to take the interrupt.
                        await asyncio.to_thread(self.kill_others)
                        interrupted_at = time.monotonic()
                        self.signal(signal.SIGALRM)
        finally:
            if not reply_task.done():
                reply_task.cancel()
        self._drain_output()
        if killed_for is not None or reply.get("status") == "interrupted":
            await asyncio.to_thread(self.kill_others)
        if self.pid is not None:
            self.cpu_marks[self.pid] = float(reply.get("cpu_total_s") or 0.0)
        return reply, killed_for

    def output(self) -> tuple[str, str, bool, bool]:
        cap = self._capture or {"stdout": bytearray(), "stderr": bytearray()}
        self._capture = None
        out, err = (cap[n][: self.output_cap] for n in ("stdout", "stderr"))
        return (
            out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"),
            len(cap["stdout"]) > self.output_cap,
            len(cap["stderr"]) > self.output_cap,
        )

    def weigh(self, elapsed: float, main_cpu0: float, seen: procscan.Usage | None = None) -> tuple[float, int]:
        """(CPU used since the marks, memory) of the session uid's processes (`seen`: from a
        scan already made): the session process counts its CPU since its last reply;
        others since first seen."""
        cpu, mem = 0.0, 0
        if seen is None:
            seen = procscan.usage_of(self.uid)
        self.processes = len(seen)
        rss_of = {pid: rss for pid, _, _, rss in seen}
        for pid, ppid, pcpu, rss in seen:
            base = main_cpu0 if pid == self.pid else self.cpu_marks.setdefault(pid, pcpu)
            cpu += max(0.0, pcpu - base)
            if pid == self.pid:
                mem += max(0, rss - self.main_base)
            else:  # a forked child shares its parent's pages: count what it grew beyond them
                mem += max(0, rss - self.rss_base.setdefault(pid, min(rss, rss_of.get(ppid, rss))))
        return min(cpu, elapsed * (os.cpu_count() or 1) + 0.5), mem

    def kill_others(self) -> None:
        """SIGKILL every process of the session uid but the interpreter: what a call that
        hit a budget started (a fork bomb's copies) must not outlive the call. The group
        is stopped first, so no copy forks a new one while we kill (inside gVisor a fork
        bomb left running starves the whole pod); killing repeats until three scans in a
        row find nothing (a copy that left the group with setsid was not stopped)."""
        if not self.cfg["drop_privileges"] or self.pid is None:
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
        cap = self._capture
        if cap is None:
            return  # between calls: a background thread's output belongs to no call
        room = self.output_cap + 1 - len(cap[name])
        if room > 0:
            cap[name] += data[:room]
        if len(cap[name]) > self.output_cap:
            self._over_cap = True

    def _drain_output(self) -> None:
        """What the session wrote before its reply is in the pipes: take it now."""
        for name, fd in self._out.items():
            while self._capture is not None and len(self._capture[name]) <= self.output_cap:
                try:
                    data = os.read(fd, 1 << 16)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                self._capture[name] += data

    async def _recv(self) -> dict:
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
        return frame

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
        if self.cfg["drop_privileges"]:
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


_BUDGET_NAMES = {
    "timeout": "wall-clock limit",
    "cpu_limit": "CPU-time limit",
    "memory_limit": "memory limit",
    "output_limit": "output cap",
    "processes": "process limit",
}


def _checked_reply(reply: dict, seq: int) -> dict:
    """The reply to call `seq`, or SessionBroke: anything else on the channel (another
    message, a stray or forged frame, a field of the wrong type) ends the session."""
    if reply.get("t") != "result" or reply.get("seq") != seq:
        raise SessionBroke(f"the session sent an unexpected frame instead of call {seq}'s reply "
                           f"(t={str(reply.get('t'))[:40]!r}, seq={str(reply.get('seq'))[:40]!r})")
    files = reply.get("files")
    if not (reply.get("status") in REPLY_STATUSES
            and (reply.get("exit_code") is None or type(reply.get("exit_code")) is int)
            and (reply.get("error") is None or isinstance(reply.get("error"), str))
            and all(isinstance(reply.get(k, 0), (int, float)) and not isinstance(reply.get(k, 0), bool)
                    for k in ("duration_s", "cpu_s", "cpu_total_s", "max_rss_bytes"))
            and (files is None or (isinstance(files, dict) and all(isinstance(v, str) for v in files.values())))
            and isinstance(reply.get("files_truncated", False), bool)
            and _cell_fields_ok(reply)):
        raise SessionBroke(f"the session sent a malformed reply to call {seq}")
    return reply


def _cell_fields_ok(reply: dict) -> bool:
    """The cell's part of a reply (executor/lean/cell.py Cell.summary): our session
    process keeps its caps itself, so outputs past them mean the code wrote the frame."""
    outputs = reply.get("outputs", [])
    count = reply.get("execution_count")
    return (isinstance(outputs, list) and len(outputs) <= cell.MAX_OUTPUTS
            and all(messages.valid_output(o) for o in outputs)
            and sum(cell.output_size(o) for o in outputs) <= cell.CELL_BYTES + cell.OUTPUT_BYTES
            and all(reply.get(k) is None or isinstance(reply.get(k), str)
                    for k in ("text", "error_name", "error_value", "traceback"))
            and isinstance(reply.get("outputs_truncated", False), bool)
            and (count is None or type(count) is int))


def classify(reply: dict, killed_for: str | None, msg: dict) -> tuple[str, int | None, str | None]:
    """(status, exit_code, error) of a call the session answered."""
    status, exit_code, error = reply["status"], reply.get("exit_code"), reply.get("error")
    if killed_for == "output_limit":
        return "output_limit", exit_code, "output exceeded the per-stream cap; the call was interrupted"
    if killed_for == "cpu_limit":
        return "cpu_limit", exit_code, f"CPU-time limit of {msg['cpu_time']} s exceeded; the call was interrupted"
    if killed_for == "memory_limit":
        return "memory_limit", exit_code, f"memory limit of {msg['memory_mb']} MiB exceeded; the call was interrupted"
    if killed_for == "processes":
        return "error", exit_code, "the call reached the session's process limit; it was interrupted and its processes killed"
    if status == "interrupted":
        return "timeout", None, f"wall-clock limit of {msg['timeout']} s exceeded; the call was interrupted"
    return status, exit_code, error
