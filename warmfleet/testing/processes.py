"""The stand-in's handles on the fleet's own lean processes, started as plain child
processes of the test: a slot runner (jobs) and a session process (sessions).

They are the processes a pod runs (executor/lean/runner.py and executor/lean/session_process.py,
stdlib only), told not to drop privileges nor to enter namespaces: so a job or a call
here ends with the same statuses, output capture, files and errors as on a fleet, with
the budgets plain rlimits give (wall clock, CPU seconds, address space, output cap) and
NO isolation at all: the code runs as the test's user, sees its files and its network.
This module starts them and speaks their frames (warmfleet.contract.messages); of the
executor it imports only stdlib-only pieces of executor.lean a pod's supervisor uses too
(the output capture, the budget verdict).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time

from executor.lean.capture import OutputCapture
from executor.lean.verdict import Overrun
from warmfleet.contract import messages
from warmfleet.contract.messages import (
    Broken, Call, CallOutcome, Chunk, Hello, Next, Ready, RunJob, RunnerConfig, RunOutcome, SessionBroken, SessionConfig,
    SessionReady, Stop,
)
from warmfleet.contract.schema import FleetLimits

# The lean entry points, as a pod starts them (executor/boot.py, the session zygote).
RUNNER_BOOT = "import sys; from executor.lean import runner; sys.exit(runner.main())"
SESSION_BOOT = (
    "import sys; from executor.lean import session_process; from warmfleet.contract.messages import SessionConfig; "
    "sys.exit(session_process.run('serve', int(sys.argv[1]), SessionConfig.from_json(sys.argv[2])))"
)
START_TIMEOUT_S = 15.0
KILL_GRACE_S = 2.0  # a job's, after its wall clock, before the runner's SIGKILL (a pod's)
# A session call's, after its interrupt, before the SIGKILL that loses the session. A pod
# gives 2 s; the stand-in, which holds no pod's resources, waits longer, so that a test
# machine's load does not turn an interrupted call into a lost session.
INTERRUPT_GRACE_S = 10.0
SILENCE_S = 5.0  # a runner silent this long past a job's wall clock and grace is stuck
CPU_CHECK_S = 0.1
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ProcessGone(Exception):
    """The lean process exited, was killed, or broke its protocol."""


def _spawn(argv: list[str], fds: list[int], **kwargs: object) -> subprocess.Popen:
    # -I: no PYTHONPATH nor user site, as on a pod; the test's environment stays out.
    return subprocess.Popen(
        [sys.executable, "-I", *argv], pass_fds=fds, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        stdin=subprocess.DEVNULL, start_new_session=True, **kwargs,  # type: ignore[arg-type]
    )


def _kill_group(proc: subprocess.Popen) -> None:
    for kill in (lambda: os.killpg(proc.pid, signal.SIGKILL), proc.kill):
        try:
            kill()
        except (ProcessLookupError, PermissionError):
            pass


class Runner:
    """One slot runner: jobs one at a time, each in a fresh forked child."""

    def __init__(self, limits: FleetLimits, workspace: str, slot: int) -> None:
        self.cfg = RunnerConfig(
            slot=slot, uid=os.getuid(), gid=os.getgid(), workspace=workspace, drop_privileges=False,
            isolate_network=False, output_bytes=limits.output_bytes, file_size_bytes=limits.file_size_bytes,
            processes=limits.processes, open_files=limits.open_files, max_memory_mb=limits.max_memory_mb,
            max_cpu_time=limits.max_cpu_time, kill_grace_s=KILL_GRACE_S, max_files=limits.max_files,
            max_output_files_bytes=limits.max_output_files_bytes,
        )
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None

    def start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = _spawn(["-c", RUNNER_BOOT, str(child.fileno()), self.cfg.to_json()], [child.fileno()])
        finally:
            child.close()
        self.sock = parent
        if not isinstance(self._recv(START_TIMEOUT_S), Hello):
            raise ProcessGone("the runner did not say hello")
        self._expect_ready()

    def _expect_ready(self) -> None:
        msg = self._recv(START_TIMEOUT_S)
        if isinstance(msg, Broken):
            raise ProcessGone(f"the runner cannot fork a job child: {msg.error}")
        if not isinstance(msg, Ready):
            raise ProcessGone(f"expected ready, got {msg!r}")

    def run(self, job: RunJob, on_chunk) -> RunOutcome:
        """Run one job; `on_chunk(Chunk)` for a streaming job's output. ProcessGone if the
        runner died or stalled (it is then restarted, and the job is the caller's to answer)."""
        if self.proc is None:
            self.start()
        try:
            messages.send(self.sock.fileno(), job)  # type: ignore[union-attr]
            silence = job.timeout + KILL_GRACE_S + SILENCE_S
            reply = self._recv(silence)
            while isinstance(reply, Chunk):
                on_chunk(reply)
                reply = self._recv(silence)
            if not isinstance(reply, RunOutcome):
                raise ProcessGone(f"expected a result, got {reply!r}")
            return reply
        except (ProcessGone, OSError, EOFError, messages.FrameError) as exc:
            self.stop()
            raise ProcessGone(str(exc)) from exc

    def next(self) -> None:
        """After the answer is out, as a pod does: the runner forks its next spare. A
        runner that fails here is started afresh for the next job."""
        try:
            messages.send(self.sock.fileno(), Next())  # type: ignore[union-attr]
            self._expect_ready()
        except (ProcessGone, OSError, EOFError, messages.FrameError):
            self.stop()

    def _recv(self, timeout: float) -> messages.Message:
        assert self.sock is not None
        if not select.select([self.sock], [], [], timeout)[0]:
            raise ProcessGone(f"the runner was silent for {timeout:.1f} s")
        self.sock.setblocking(True)
        try:
            return messages.receive(self.sock.fileno())
        except EOFError:
            raise ProcessGone("the runner closed its channel") from None

    def kill(self) -> None:
        """SIGKILL the runner and its job, from any thread: the thread waiting on it sees
        the channel end (its job is answered failed); stop() cleans up after."""
        if (proc := self.proc) is not None:
            _kill_group(proc)

    def stop(self) -> None:
        if self.proc is not None:
            try:
                messages.send(self.sock.fileno(), Stop())  # type: ignore[union-attr]
            except OSError:
                pass
            _kill_group(self.proc)
            self.proc.wait()
            self.proc = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Died(Exception):
    """The session process is gone; the message says how, `overrun` which budget it would
    not stop at (None: it died by itself, or was killed)."""

    def __init__(self, why: str, overrun: Overrun | None = None) -> None:
        super().__init__(why)
        self.overrun = overrun


class SessionProcess:
    """One session's interpreter: calls in the same globals and workspace."""

    def __init__(self, limits: FleetLimits, workspace: str) -> None:
        self.limits = limits
        self.cfg = SessionConfig(
            uid=os.getuid(), gid=os.getgid(), workspace=workspace, drop_privileges=False, isolate_network=False,
            processes=limits.processes, file_size_bytes=limits.file_size_bytes, open_files=limits.open_files,
            max_memory_mb=limits.max_memory_mb, max_files=limits.max_files,
            max_output_files_bytes=limits.max_output_files_bytes,
        )
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.seq = 0

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # On its command line: a pod sends it through the zygote because it may carry the
            # egress relay's variables; the stand-in's carries no secret (it has no egress).
            self.proc = _spawn(["-c", SESSION_BOOT, str(child.fileno()), self.cfg.to_json()], [child.fileno()],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        finally:
            child.close()
        self.sock = parent
        for pipe in (self.proc.stdout, self.proc.stderr):
            os.set_blocking(pipe.fileno(), False)  # type: ignore[union-attr]
        msg = self._frame(time.monotonic() + START_TIMEOUT_S, None)
        if not isinstance(msg, SessionReady):
            self.kill()
            why = msg.error if isinstance(msg, SessionBroken) else f"it said {msg!r:.200}"
            raise Died(f"the session process did not become ready: {why}")

    def exit_status(self) -> int | None:
        """The wait status once it exited (a signal as -N, as Popen says), else None."""
        return None if self.proc is None else self.proc.poll()

    def call(self, run: Call) -> tuple[CallOutcome, Overrun | None, OutputCapture]:
        """Run one call under its budgets: (the session's reply, the budget it was stopped
        for or None, its output). Died if the process was killed or died."""
        assert self.proc is not None and self.sock is not None
        self.seq += 1
        out = OutputCapture(self.limits.output_bytes)
        try:
            self.sock.sendall(messages.encode(run.replace(seq=self.seq)))
        except OSError:
            raise Died("the session's process ended before the call") from None
        started = time.monotonic()
        wall = started + run.timeout
        cpu0 = self._cpu_s()
        killed_for: Overrun | None = None
        interrupted_at: float | None = None
        while True:
            now = time.monotonic()
            if interrupted_at is None and now >= wall:
                interrupted_at = now  # the session interrupts the call (a timeout) and lives on
                self._signal(signal.SIGALRM)
            if interrupted_at is None and cpu0 is not None and (cpu := self._cpu_s()) is not None and cpu - cpu0 > run.cpu_time:
                killed_for, interrupted_at = Overrun.CPU, now
                self._signal(signal.SIGALRM)
            if interrupted_at is not None and now >= interrupted_at + INTERRUPT_GRACE_S:
                self.kill()
                raise Died("a call did not stop when interrupted: the session's process was killed",
                           killed_for or Overrun.TIMEOUT)
            deadline = min(wall if interrupted_at is None else interrupted_at + INTERRUPT_GRACE_S, now + CPU_CHECK_S)
            reply = self._frame(deadline, out)
            if reply is not None:
                break
            if any(out.truncated.values()) and interrupted_at is None:
                killed_for, interrupted_at = Overrun.OUTPUT, time.monotonic()
                self._signal(signal.SIGALRM)
        for name, pipe in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            out.drain(name, pipe.fileno())  # type: ignore[union-attr]  # written before it answered
        if not isinstance(reply, CallOutcome) or reply.seq != self.seq:
            self.kill()
            raise Died(f"the session broke its protocol: {reply!r:.200}")
        return reply, killed_for, out

    def _frame(self, deadline: float, out: OutputCapture | None) -> messages.Message | None:
        """The next message from the session if one comes before `deadline`, reading its
        output meanwhile (into `out`; None: dropped); None at the deadline. Died on end of
        channel."""
        assert self.proc is not None and self.sock is not None
        pipes = {self.proc.stdout.fileno(): "stdout", self.proc.stderr.fileno(): "stderr"}  # type: ignore[union-attr]
        while (left := deadline - time.monotonic()) > 0:
            ready = select.select([self.sock, *pipes], [], [], left)[0]
            for fd in ready:
                if fd is self.sock:
                    try:
                        return messages.from_frame(messages.read_frame(self.sock.fileno()), "session")
                    except (EOFError, OSError, messages.FrameError):
                        status = self.proc.wait()
                        raise Died(f"the session's process ended during the call (wait status {status})") from None
                data = os.read(fd, 1 << 16)
                if data and out is not None:
                    out.add(pipes[fd], data)
        return None

    def _cpu_s(self) -> float | None:
        """The session process's CPU seconds (Linux /proc), or None where unreadable."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _TICKS
        except (OSError, IndexError, ValueError):
            return None

    def _signal(self, sig: int) -> None:
        try:
            os.kill(self.proc.pid, sig)  # type: ignore[union-attr]
        except ProcessLookupError:
            pass

    def signal_kill(self) -> None:
        """SIGKILL the session's process group from any thread, without waiting: the
        thread in a call sees its channel end."""
        if (proc := self.proc) is not None:
            _kill_group(proc)

    def kill(self) -> None:
        """SIGKILL the session's process group and reap it."""
        if self.proc is None:
            return
        _kill_group(self.proc)
        self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
