"""The job child: forked ahead of time by a slot runner, it locks itself down
(executor/lean/lockdown.py, as a session process does), tells the runner "ready", waits
for code, runs it and leaves only through ``os._exit``.
"""

from __future__ import annotations

import builtins
import io
import json
import math
import select
import os
import resource
import signal
import sys
import traceback  # noqa: F401 - imported before the fork: the cell (cell.py) formats the job's tracebacks
from typing import TYPE_CHECKING

from executor.lean.cell import Cell, print_traceback
from executor.lean.jobenv import LIBRARY_ENV, Figures, warm_up
from executor.lean.jobfiles import collect_outputs, place_inputs
from executor.lean.lockdown import detach, hide_executor, limit, limit_resources, lock_down, reset_environment_and_stdio
from executor.lean.verdict import exit_status
from warmfleet.contract.messages import RunJob, RunnerConfig

if TYPE_CHECKING:
    from executor.lean.egress_relay import Relay

# Records the child writes on its status pipe: a kind byte, a 4-byte length, a payload.
READY = b"R"
MEMORY_ERROR = b"M"
SETUP_FAILED = b"F"
OUT_FILES = b"O"  # payload: JSON {"files": {path: base64}, "truncated": bool}
OUTPUT = b"D"  # payload: JSON of one cell output (messages.valid_output), in order
CELL_ERROR = b"E"  # payload: JSON {"name", "value", "traceback"} of the uncaught exception
RECORD_HEADER = 5
OUT_DIR = "out"
BASH = "/bin/bash"


def record(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + len(payload).to_bytes(4, "big") + payload


def parse_records(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a status stream into (kind, payload); a torn or forged tail is dropped."""
    out, pos = [], 0
    while pos + RECORD_HEADER <= len(data):
        size = int.from_bytes(data[pos + 1 : pos + RECORD_HEADER], "big")
        end = pos + RECORD_HEADER + size
        if end > len(data):
            break
        out.append((data[pos : pos + 1], data[pos + RECORD_HEADER : end]))
        pos = end
    return out


# A preloaded child starts with the environment's modules mapped: its memory budgets
# count on top of that (lockdown.limit_resources). Set once per child (a fresh process per job).
_address_base = 0


def child_main(spec: RunnerConfig, code_r: int, status_w: int, out_w: int, err_w: int, thorough: bool = True) -> None:
    """Entry point right after fork. Never returns. `thorough`: the runner says the slot
    uid may still have processes (see lockdown.kill_leftovers)."""
    try:
        relay = _prepare(spec, code_r, status_w, out_w, err_w, thorough)
        _rehearse()
    except BaseException as exc:  # noqa: BLE001 - report any setup failure, then die
        try:
            os.write(status_w, record(SETUP_FAILED, repr(exc).encode()[:1000]))
        finally:
            os._exit(70)
    os.write(status_w, record(READY))
    if spec.warmup:  # while waiting for code, as the job uid, inside the fleet maxima
        warm_up(spec.warmup, stop=lambda: bool(select.select([code_r], [], [], 0)[0]))
    _run(spec, _read_all(code_r), status_w, relay)


def _prepare(spec: RunnerConfig, code_r: int, status_w: int, out_w: int, err_w: int, thorough: bool) -> "Relay | None":
    detach(out_w, err_w)
    # code_r and status_w are close-on-exec already (the runner made them with O_CLOEXEC).
    relay = lock_down(spec, {code_r, status_w}, thorough=thorough, egress=bool(spec.egress_socket),
                      relay_socket=spec.egress_socket)
    # Hard caps at the fleet maxima now; the job's own (lower) budgets are set once it arrives.
    global _address_base
    _address_base = limit_resources(spec, preloaded=bool(spec.preload))
    limit(resource.RLIMIT_CPU, math.ceil(spec.max_cpu_time) + 1)
    hide_executor()
    reset_environment_and_stdio(spec.workspace, LIBRARY_ENV if spec.job_path or spec.preload else {})
    return relay


# A print and a result: the cell's output path (a MIME bundle, its record's JSON) too.
_REHEARSAL = RunJob(code="print(1, file=_sink)\n{'a': [1, 2.5, 'x', None]}", language="python", timeout=1.0,
                    cpu_time=1.0, memory_mb=1).child_payload()


def _rehearse() -> None:
    """Decode a job and run a trivial one into a throwaway buffer, before saying ready.
    Since the fork this child shares its pages with the runner, and in gVisor each first
    write to one (a refcount is enough) is a copy-on-write fault through the Sentry:
    taken now, they are not taken while a job waits (interleaved A/B, with the runner's
    own rehearsal: in-child print(1) p50 2.7 -> 2.1 ms, paced p50 9.1 -> 6.4 ms). Runs only
    this constant code, as the job uid, under the job's limits; nothing of it outlives
    the call."""
    job = RunJob.from_child_payload(_REHEARSAL)
    cell = Cell(emit=lambda output: record(OUTPUT, json.dumps(output, ensure_ascii=False).encode("utf-8", "replace")))
    cell.run(job.code, {"__name__": "__main__", "__builtins__": builtins, "_sink": io.StringIO()}, "<job>")


def _read_all(fd: int) -> bytes:
    """64 KiB reads: a 1 MiB buffer per read was a fresh mmap (and its munmap) per job."""
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _run(spec: RunnerConfig, payload: bytes, status_w: int, relay: "Relay | None" = None) -> None:
    job = RunJob.from_child_payload(payload)
    try:
        place_inputs(job.files)
    except OSError as exc:
        os.write(2, f"warmfleet: could not place input files: {exc}\n".encode())
        os._exit(1)
    if relay is not None and job.egress:
        _start_egress_relay(relay, job.egress["job_id"], job.egress["token"])
    # RLIMIT_CPU counts whole seconds and includes the few ms of setup: ceil the budget.
    limit(resource.RLIMIT_CPU, math.ceil(job.cpu_time))
    limit(resource.RLIMIT_AS, _address_base + (job.memory_mb << 20))
    signal.setitimer(signal.ITIMER_REAL, job.timeout)
    code_text = job.code
    os.environ.update(job.env)
    if job.language == "bash":
        status = _run_bash(code_text)
    else:
        # Each output goes to the runner as it is made: a job killed for a budget still
        # returns what it displayed before.
        cell = Cell(emit=lambda output: _send_record(status_w, OUTPUT, output))
        # Only where matplotlib can be imported at all: a pool with a job environment.
        figures = Figures(os.path.join(spec.workspace, OUT_DIR)) if spec.job_path or spec.preload else None
        if figures is not None:
            figures.on_png = cell.add_png
            figures.install()
        status = _run_python(code_text, status_w, cell)
        if figures is not None:
            _save_figures(figures)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a closed or broken pipe must not change the status
            pass
    _report_outputs(spec, status_w)
    os._exit(status)


def _start_egress_relay(relay: "Relay", job_id: str, token: str) -> None:
    """The pool allows some egress: the relay listening in our network namespace since
    the spare was made starts relaying as this job, and the proxy variables point at it.
    Before the job's own budgets: a thread's stack counts against RLIMIT_AS."""
    import threading  # loaded with the relay already; executor.* is gone (lockdown.hide_executor)

    try:
        threading.stack_size(256 << 10)
        relay.start(job_id, token)
        os.environ.update(relay.environment())
    except Exception as exc:  # noqa: BLE001 - the job runs, without egress, and is told why
        os.write(2, f"warmfleet: egress relay could not start, no network access: {exc!r}\n".encode())


def _run_python(code_text: str, status_w: int, cell: Cell) -> int:
    namespace = {"__name__": "__main__", "__builtins__": builtins, "__doc__": None}
    try:
        cell.run(code_text, namespace, "<job>")
    except SystemExit as exc:
        status = exit_status(exc)
        if status:
            _send_record(status_w, CELL_ERROR, cell.error)
        return status
    except MemoryError:
        os.write(status_w, record(MEMORY_ERROR))
        _print_exception(sys.exc_info()[1])
        _send_record(status_w, CELL_ERROR, cell.error)
        return 1
    except BaseException as exc:  # noqa: BLE001 - the job's own failure, reported as Python would
        _print_exception(exc)
        _send_record(status_w, CELL_ERROR, cell.error)
        return 1
    return 0


def _send_record(status_w: int, kind: bytes, payload: object) -> None:
    """A JSON record to the runner; one write() per record, whole (the runner reads the
    pipe as it fills). A failure (the job closed the pipe) loses only this record."""
    try:
        data = memoryview(record(kind, json.dumps(payload, ensure_ascii=False).encode("utf-8", "replace")))
        while data:
            data = data[os.write(status_w, data) :]
    except (OSError, ValueError, TypeError, MemoryError):
        pass


def _save_figures(figures: Figures) -> None:
    """Figures still open at exit; a failure to draw one is the job's, told on stderr."""
    try:
        figures.save_open()
    except BaseException as exc:  # noqa: BLE001 - the job's own objects failed to render
        try:
            print(f"warmfleet: could not save a figure: {type(exc).__name__}: {exc}", file=sys.stderr)
        except BaseException:  # noqa: BLE001
            pass


def run_bash(code: str) -> int:
    """`bash -c CODE` in a child on our stdout, stderr, environment, uid and limits; its wait
    status. Shared by bash jobs and bash session calls. Anything raised while we wait (a
    session call's interrupt) kills bash first, so it cannot outlive the call."""
    pid = os.fork()
    if pid == 0:
        try:
            os.execve(BASH, ["bash", "-c", code], dict(os.environ))
        finally:
            os._exit(127)
    try:
        return os.waitpid(pid, 0)[1]
    except BaseException:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
        raise


def _run_bash(code_text: str) -> int:
    """A bash job, so out/ is collected after. The wall-clock timer stays on us: SIGALRM
    ends this process, and the runner's group kill ends bash."""
    status = run_bash(code_text)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)  # end the way bash ended, so the runner sees the signal
    return os.WEXITSTATUS(status)


def _report_outputs(spec: RunnerConfig, status_w: int) -> None:
    try:
        # Absolute: the job may have chdir'd anywhere. And refuse a linked out/ here:
        # runsc 20221219 follows a symlink to a directory despite O_NOFOLLOW when
        # O_DIRECTORY is also set (checked), so the collector's own open would follow it.
        out_dir = os.path.join(spec.workspace, OUT_DIR)
        if not os.path.isdir(out_dir) or os.path.islink(out_dir):
            return
        files, truncated = collect_outputs(out_dir, spec.max_files, spec.max_output_files_bytes)
        if files or truncated:
            os.write(status_w, record(OUT_FILES, json.dumps({"files": files, "truncated": truncated}).encode()))
    except (OSError, MemoryError, ValueError):
        pass  # the job broke its own out/ or its status pipe: it gets no files


def _print_exception(exc: BaseException | None) -> None:
    """Print the traceback without the executor's frames, like `python file.py` would."""
    try:
        print_traceback(exc)  # type: ignore[arg-type]
    except BaseException:  # noqa: BLE001 - under memory pressure even printing may fail
        try:
            os.write(2, f"{type(exc).__name__}\n".encode())
        except BaseException:  # noqa: BLE001
            pass
