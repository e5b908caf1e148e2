"""The session zygote: one root process per pod that holds the session machinery and the
pool's preloaded job environment, and forks a session process (executor/lean/session_process.py)
on request. A session of a data-science pool then starts with pandas imported (a fork of
an interpreter that already imported it), and its pages stay shared with the zygote's
until the session writes to them.

Started by the pod's SessionHost (executor/sessions/zygote_handle.py) as a fresh
``python -S -I`` with one SOCK_SEQPACKET control socket; nothing on its command line but
that descriptor's number (inside gVisor every uid can read every process's cmdline).
Messages (warmfleet.contract.messages, protocol "zygote"), one per packet:

  host -> zygote  ZygoteInit                      first, once
  zygote -> host  ZygoteReady | ZygoteBroken
  host -> zygote  Spawn + 3 descriptors (SCM_RIGHTS): the session's channel end, its
                  stdout and its stderr pipes
  zygote -> host  Spawned | SpawnFailed
  zygote -> host  Exited                          a session it forked was reaped

The sessions are the zygote's children: it reaps them and reports their wait status. If
the zygote dies, its sessions live on (their channels and pipes go straight to the host)
and, orphaned, are reaped by the supervisor, the pod's subreaper. Stdlib only, plus the
messages module and the executor's stdlib-only helpers, as the session process.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import socket
import sys

from executor.lean import jobenv, procscan, session_process as session_proc
from executor.lean.lockdown import detach, executor_modules
from warmfleet.contract.messages import (
    SPAWN_MODES, Exited, FrameError, Message, SessionConfig, Spawn, Spawned, SpawnFailed, ZygoteBroken, ZygoteInit,
    ZygoteReady, from_packet, to_packet,
)

MAX_PACKET = 1 << 20
BOOT = (
    "import sys, os; sys.path.insert(0, sys.argv.pop(1)); from executor.lean import session_zygote; "
    "os._exit(session_zygote.main())"
)


def send(sock: socket.socket, msg: Message) -> None:
    sock.send(to_packet(msg))


def fork_session(mode: str, cfg: SessionConfig, fds: list[int]) -> int:
    """Fork one session process on `fds` (channel, stdout, stderr); the parent's pid."""
    chan, out_w, err_w = fds
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing of ours is written twice, by the child
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())  # no handler of ours runs in the child
    try:
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                detach(out_w, err_w)  # its own group and session: the host kills it by group
                # session_proc's lock_down closes everything else (the control socket too).
                code = session_proc.run(mode, chan, cfg)
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
            finally:
                os._exit(code)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return pid


class Zygote:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop

    def load(self) -> bool:
        """The init message, then the pool's environment (as a slot runner loads it)."""
        try:
            init = from_packet(self.sock.recv(MAX_PACKET))
            if not isinstance(init, ZygoteInit):
                raise FrameError(f"expected init, got {init!r}")
            jobenv.load(list(init.job_path), list(init.preload), list(init.warmup))
        except (ImportError, FrameError) as exc:
            send(self.sock, ZygoteBroken(error=str(exc)))
            return False
        compile("print(1)", "<warm>", "exec")  # a session's first call does not warm the compiler
        session_proc.EXECUTOR_MODULES = executor_modules()
        gc.collect()  # what the zygote holds, out of the sessions' collections (jobenv.load does it too)
        gc.freeze()
        send(self.sock, ZygoteReady(pid=os.getpid()))
        return True

    def serve(self) -> int:
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                if fd == self.wake_r:
                    while _read(self.wake_r):
                        pass
                    self.reap()
                elif not self.handle():
                    return 0  # the host closed the control socket: our sessions live on without us

    def handle(self) -> bool:
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_PACKET, 3)
        except InterruptedError:
            return True
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        msg: Message | None = None
        try:
            msg = from_packet(data)
            if not isinstance(msg, Spawn) or len(fds) != 3 or msg.mode not in SPAWN_MODES:
                raise ValueError(f"bad request {msg!r:.100} with {len(fds)} descriptors")
            pid = fork_session(msg.mode, SessionConfig.from_dict(msg.cfg), fds)  # type: ignore[arg-type]
            send(self.sock, Spawned(id=msg.id, pid=pid))
        except (ValueError, TypeError, KeyError, OSError) as exc:
            send(self.sock, SpawnFailed(id=msg.id if isinstance(msg, Spawn) else None, error=repr(exc)[:1000]))
        finally:
            for fd in fds:
                os.close(fd)
        return True

    def reap(self) -> None:
        for pid, status in procscan.reaped_children():
            send(self.sock, Exited(pid=pid, status=status))


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


def main() -> int:
    """argv: CONTROL_FD (a SOCK_SEQPACKET socket)."""
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.setblocking(True)
    zygote = Zygote(sock)
    if not zygote.load():
        return 3
    return zygote.serve()
