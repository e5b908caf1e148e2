"""A slot runner: a small, warmed process that keeps one job child forked ahead of
time, hands it code, enforces the wall clock and output caps, and reports.

It is started as a fresh ``python -S -I`` so its memory map stays small: inside gVisor
fork cost grows with the parent's mappings (~9 ms lean vs ~22 ms after heavy imports:
docs/design/field-notes.md). It imports only the stdlib and the executor's messages
(warmfleet.contract.messages), and talks to the supervisor over a socketpair in their frames.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import sys
import time

from executor.lean import cell
from executor.lean.capture import OutputCapture
from executor.lean.child import CELL_ERROR, MEMORY_ERROR, OUT_FILES, OUTPUT, READY, RECORD_HEADER, SETUP_FAILED, child_main, parse_records
from executor.lean import jobenv
from executor.lean.procscan import TreeWeigher, live_processes_of, rss_bytes
from executor.lean.verdict import Overrun, of_wait_status
from warmfleet.contract import messages
from warmfleet.contract.messages import Broken, Hello, Ready, RunJob, RunnerConfig, RunOutcome, Stop

TREE_CHECK_S = 0.25  # how often a running job's whole process tree is weighed (CPU, memory)

SPARE_READY_TIMEOUT = 10.0


class Spare:
    """A forked child waiting for code, and the runner's ends of its pipes."""

    def __init__(self, pid: int, code_w: int, status_r: int, out_r: int, err_r: int) -> None:
        self.pid, self.code_w, self.status_r, self.out_r, self.err_r = pid, code_w, status_r, out_r, err_r
        self.rss_base = 0  # preloaded: what the child holds before the job (not the job's)

    def close(self) -> None:
        for fd in (self.code_w, self.status_r, self.out_r, self.err_r):
            try:
                os.close(fd)
            except OSError:
                pass


class Runner:
    def __init__(self, chan: int, cfg: RunnerConfig) -> None:
        self.chan = chan
        self.spec = cfg
        self.output_cap: int = cfg.output_bytes
        self.grace: float = cfg.kill_grace_s
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        # The supervisor decides when we stop; a terminal's SIGINT must not kill a job mid-run.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # A hard stop from the supervisor: take the job child's whole group down with us.
        signal.signal(signal.SIGTERM, self._on_term)
        self.child_pid: int | None = None
        compile("print(1)", "<warm>", "exec")  # warm the compiler before any fork (docs/design/field-notes.md)
        self.spare: Spare | None = None
        # Whether the next spare must make sure, over several /proc scans, that nothing of
        # the slot uid is left: after a start (a crashed runner's job may live on) and after
        # any job whose processes had to be killed (one may have been mid-fork).
        self.leftovers_possible = True

    # -- spare management -------------------------------------------------------------
    def fork_spare(self) -> Spare:
        code_r, code_w = os.pipe2(os.O_CLOEXEC)
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        # Block signals across fork so the child never runs a handler meant for the runner.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            pid = os.fork()
            if pid == 0:  # child: never returns
                try:
                    child_main(self.spec, code_r, status_w, out_w, err_w, self.leftovers_possible)
                finally:
                    os._exit(70)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        for fd in (code_r, status_w, out_w, err_w):
            os.close(fd)
        self.child_pid = pid
        return Spare(pid, code_w, status_r, out_r, err_r)

    def prepare_spare(self) -> None:
        """Fork a spare and wait until it reports ready (leftovers killed, workspace empty)."""
        spare = self.fork_spare()
        self._rehearse()
        fl = select.poll()
        fl.register(spare.status_r, select.POLLIN)
        events = fl.poll(SPARE_READY_TIMEOUT * 1000)
        msg = os.read(spare.status_r, 4096) if events else b""
        if msg[:1] != READY:
            _kill(spare.pid)
            os.waitpid(spare.pid, 0)
            spare.close()
            why = msg[RECORD_HEADER:].decode(errors="replace") if msg[:1] == SETUP_FAILED else "no ready signal"
            raise RuntimeError(f"spare child failed to start: {why}")
        if self.spec.preload:
            spare.rss_base = rss_bytes(spare.pid)
        self.spare = spare

    def _rehearse(self) -> None:
        """The job and result path once, on made-up values. Since the fork the runner shares
        its pages with the spare, and in gVisor each first write to one (a refcount is
        enough) is a copy-on-write fault through the Sentry: taken now, they are not taken
        while a job's answer waits."""
        frame = messages.encode(_REHEARSAL_JOB)
        job = messages.from_frame(messages.decode_body(frame[messages.HEADER.size :]))
        job.child_payload()
        capture = OutputCapture(self.output_cap, None)
        capture.add("stdout", b"1\n")
        records = dict(parse_records(b""))
        status, exit_code, error = of_wait_status(job, None, 0, 0.0, MEMORY_ERROR in records)
        outcome = capture.into(RunOutcome(status=status.value, exit_code=exit_code, error=error,
                                          duration_s=0.0, cpu_s=0.0, max_rss_bytes=0,
                                          **cell.received([_REHEARSAL_OUTPUT], None)))
        messages.encode(outcome)

    def _on_term(self, *_: object) -> None:
        if self.child_pid is not None:
            _kill(self.child_pid)
        os._exit(143)

    # -- one job ----------------------------------------------------------------------
    def run_job(self, job: RunJob) -> RunOutcome:
        spare, self.spare = self.spare, None
        assert spare is not None
        started = time.monotonic()
        deadline = started + job.timeout + self.grace
        try:
            _write_all(spare.code_w, job.child_payload())
        except BrokenPipeError:
            pass  # the child died before reading; its wait status tells why
        os.close(spare.code_w)

        capture = OutputCapture(self.output_cap, self.chan if job.stream else None)
        status_buf = bytearray()
        status_cap = self.spec.max_output_files_bytes * 2 + cell.RECORDS_BYTES + (1 << 20)
        poller = select.poll()
        for fd in (spare.out_r, spare.err_r, spare.status_r, self.wake_r):
            poller.register(fd, select.POLLIN)
        names = {spare.out_r: "stdout", spare.err_r: "stderr"}
        killed_for: Overrun | None = None
        waited = None
        tree = TreeWeigher(self.spec.uid, spare.pid, main_base=spare.rss_base)
        memory_budget = job.memory_mb << 20
        next_tree_check = started + TREE_CHECK_S
        while waited is None:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                killed_for = killed_for or Overrun.TIMEOUT
                _kill(spare.pid)
                waited = os.wait4(spare.pid, 0)
                break
            if self.spec.drop_privileges and now >= next_tree_check and killed_for is None:
                next_tree_check = now + TREE_CHECK_S
                pids = tree.weigh(now - started)
                if tree.cpu_s > job.cpu_time or tree.memory_bytes > memory_budget:
                    killed_for = Overrun.CPU if tree.cpu_s > job.cpu_time else Overrun.MEMORY
                    _kill(spare.pid)
                    for pid in pids:  # descendants that left the group with setsid
                        _kill_one(pid)
            wait_s = min(remaining, capture.flush_every_s, max(0.0, next_tree_check - now))
            for fd, _ev in poller.poll(wait_s * 1000):
                if fd == self.wake_r:
                    _drain(self.wake_r)
                    continue
                data = _read_some(fd)
                if not data:
                    poller.unregister(fd)
                elif fd == spare.status_r:
                    if len(status_buf) < status_cap:
                        status_buf += data
                elif not capture.add(names[fd], data) and killed_for is None:
                    killed_for = Overrun.OUTPUT
                    _kill(spare.pid)
            capture.flush_if_due()
            pid, status, rusage = os.wait4(spare.pid, os.WNOHANG)
            if pid:
                waited = (pid, status, rusage)
        duration = time.monotonic() - started
        _, status, rusage = waited
        # Whatever the child wrote before it died is still in the pipe buffers.
        for fd, name in names.items():
            fcntl.fcntl(fd, fcntl.F_SETFL, os.O_NONBLOCK)
            capture.drain(name, fd)
        capture.flush()
        fcntl.fcntl(spare.status_r, fcntl.F_SETFL, os.O_NONBLOCK)
        while len(status_buf) < status_cap and (data := _read_some(spare.status_r)):
            status_buf += data
        record_list = parse_records(bytes(status_buf))
        records = dict(record_list)
        # Kill the rest of the job's process group now; setsid escapees are dealt with
        # before we answer (serve) and again by the next spare's kill(-1). The group, not
        # the pid: that was reaped above and may already name another process.
        group_alive = _kill_group(spare.pid)
        self.leftovers_possible = group_alive or killed_for is not None or len(tree.last_rss) > 1
        spare.close()
        cpu_s = max(rusage.ru_utime + rusage.ru_stime, tree.cpu_s)
        ended, exit_code, error = of_wait_status(job, killed_for, status, cpu_s, MEMORY_ERROR in records)
        res = capture.into(RunOutcome(
            status=ended.value,
            exit_code=exit_code,
            error=error,
            duration_s=round(duration, 6),
            cpu_s=round(cpu_s, 6),
            max_rss_bytes=rusage.ru_maxrss * 1024,
            **cell.received([p for kind, p in record_list if kind == OUTPUT], records.get(CELL_ERROR)),
        ))
        if OUT_FILES in records:
            try:
                out = json.loads(records[OUT_FILES])
                res.files, res.files_truncated = dict(out["files"]), bool(out["truncated"])
            except (ValueError, KeyError, TypeError):
                res.files_truncated = True  # the job scribbled on its status pipe
        return res

    def serve(self) -> int:
        """hello, then per job: ready -> job -> result -> next. The supervisor says "next"
        once the result is stored and published: inside gVisor a fork stalls the pod's
        other work for its ~10 ms, so the spare is forked only after the answer is out."""
        messages.send(self.chan, Hello(pid=os.getpid()))
        try:
            jobenv.load(self.spec.job_path, self.spec.preload, self.spec.warmup)
        except ImportError as exc:
            messages.send(self.chan, Broken(error=str(exc)))
            return 3
        while True:
            try:
                if self.spare is None:
                    self.prepare_spare()
            except RuntimeError as exc:
                messages.send(self.chan, Broken(error=str(exc)))
                return 3
            messages.send(self.chan, Ready())
            msg = self._read_msg()
            if isinstance(msg, Stop):
                return self._stop()
            if not isinstance(msg, RunJob):
                raise messages.FrameError(f"expected a job or stop, got {msg!r}")
            result = self.run_job(msg)
            if self.spec.drop_privileges and live_processes_of(self.spec.uid):
                self.leftovers_possible = True
                # The job left processes behind (a daemon that called setsid). Kill them
                # through the next spare (kill(-1) as the job uid) before answering, so
                # no later job, on any slot, can see them.
                try:
                    self.prepare_spare()
                except RuntimeError as exc:
                    messages.send(self.chan, result)
                    messages.send(self.chan, Broken(error=str(exc)))
                    return 3
            messages.send(self.chan, result)
            if isinstance(self._read_msg(), Stop):
                return self._stop()

    def _read_msg(self) -> messages.Message:
        try:
            return messages.receive(self.chan)
        except EOFError:
            return Stop()

    def _stop(self) -> int:
        if self.spare is not None:
            _kill(self.spare.pid)
            os.waitpid(self.spare.pid, 0)
        return 0


_REHEARSAL_JOB = RunJob(code="print(1)", language="python", timeout=1.0, cpu_time=1.0, memory_mb=1)
_REHEARSAL_OUTPUT = b'{"type": "result", "data": {"text/plain": "1"}}'


def _kill(pid: int) -> None:
    """A job child not yet reaped, and its process group."""
    _kill_group(pid)
    _kill_one(pid)


def _kill_group(pgid: int) -> bool:
    """True if anything in the group was there to be killed."""
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _kill_one(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_some(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""


def _drain(fd: int) -> None:
    while _read_some(fd):
        pass


def main() -> int:
    """argv: CHANNEL_FD CONFIG_JSON."""
    chan = int(sys.argv[1])
    return Runner(chan, RunnerConfig.from_json(sys.argv[2])).serve()


if __name__ == "__main__":
    sys.exit(main())
