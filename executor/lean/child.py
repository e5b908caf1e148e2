"""The job child: forked ahead of time by a slot runner, it locks itself down, waits
for code, runs it and leaves only through ``os._exit``.

Order matters and is the security boundary inside the sandbox:
new session -> stdio onto pipes -> close every other descriptor -> a network namespace
of its own (only `lo`: the pod's Redis, API server and loopback services stay out of
reach) -> drop to the slot's uid/gid (which clears every capability) -> kill whatever the previous job left running as that uid -> empty the
workspace -> rlimits -> minimal environment -> tell the runner "ready" -> read code.
"""

from __future__ import annotations

import builtins
import ctypes
import fcntl
import io
import json
import math
import select
import os
import resource
import signal
import socket
import struct
import sys
import time
import traceback  # noqa: F401 - imported before the fork: the cell (cell.py) formats the job's tracebacks
from typing import TYPE_CHECKING

from executor.lean.cell import Cell, print_traceback
from executor.lean.jobenv import LIBRARY_ENV, Figures, address_space_bytes, warm_up
from executor.lean.jobfiles import collect_outputs, place_inputs
from executor.lean.procscan import live_processes_of
from executor.lean.workspace import empty_dir
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

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
CLONE_NEWNET = 0x40000000
# A preloaded child starts with the environment's modules mapped (~450 MiB of address
# space for numpy+pandas+matplotlib): its memory budgets count on top of that. Set once
# per child (a fresh process per job).
_address_base = 0
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
# Where the executor's packages are installed (boot.py puts it first on the runner's path).
_EXECUTOR_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Resolved (and socket, fcntl, struct imported) in the runner, before it forks: done in
# each child, the imports alone cost ~35 syscalls and their unmarshalling per job.
_LIBC = ctypes.CDLL(None, use_errno=True)


def child_main(spec: RunnerConfig, code_r: int, status_w: int, out_w: int, err_w: int, thorough: bool = True) -> None:
    """Entry point right after fork. Never returns. `thorough`: the runner says the slot
    uid may still have processes (see _kill_leftovers)."""
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
    os.setsid()
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])

    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    # Every other inherited descriptor (the runner's channel and wake-up pipe, the spare's
    # other pipe ends, /dev/null's first fd) goes, in a few close_range calls rather than
    # a /proc listing and a close per fd (~14 syscalls less per job).
    low = 3
    for fd in sorted({code_r, status_w}):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    # code_r and status_w are close-on-exec already (the runner made them with O_CLOEXEC).

    relay = None
    # Needs CAP_SYS_ADMIN, so only with drop_privileges (the child is root until then).
    if spec.isolate_network and spec.drop_privileges:
        enter_new_network_namespace()
        _explain_name_failures(bool(spec.egress_socket))
        if spec.egress_socket:  # the pool allows some egress: the job's relay listens here
            from executor.lean.egress_relay import RELAY_PORT, Relay

            relay = Relay(spec.egress_socket, RELAY_PORT)
    if spec.drop_privileges:
        # From root to a non-zero uid: the kernel (and gVisor) clears the permitted and
        # effective capability sets, CAP_SYS_ADMIN included (tests/hostile checks CapEff).
        os.setgroups([])
        os.setresgid(spec.gid, spec.gid, spec.gid)
        os.setresuid(spec.uid, spec.uid, spec.uid)
        _kill_leftovers(thorough)
    empty_dir(spec.workspace)
    os.chdir(spec.workspace)

    _limit(resource.RLIMIT_NPROC, spec.processes)
    _limit(resource.RLIMIT_FSIZE, spec.file_size_bytes)
    _limit(resource.RLIMIT_NOFILE, spec.open_files)
    _limit(resource.RLIMIT_CORE, 0)
    # Hard caps at the fleet maxima now; the job's own (lower) budgets are set once it arrives.
    global _address_base
    _address_base = address_space_bytes() if spec.preload else 0
    _limit(resource.RLIMIT_AS, _address_base + (spec.max_memory_mb << 20))
    _limit(resource.RLIMIT_CPU, math.ceil(spec.max_cpu_time) + 1)

    _hide_executor()
    reset_environment_and_stdio(spec.workspace, LIBRARY_ENV if spec.job_path or spec.preload else {})
    return relay


def reset_environment_and_stdio(workspace: str, extra_env: dict[str, str]) -> None:
    """What the code sees of its process (a job child's, a session's): a minimal
    environment (plus `extra_env`), an empty argv, text stdio on descriptors 0-2,
    line-buffered so its output and its subprocesses' interleave as written."""
    os.environ.clear()
    os.environ.update(PATH=SAFE_PATH, HOME=workspace, TMPDIR=workspace, LANG="C.UTF-8", PYTHONDONTWRITEBYTECODE="1")
    os.environ.update(extra_env)
    sys.argv = [""]
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )


def enter_new_network_namespace() -> None:
    """unshare(CLONE_NEWNET) (Python 3.11 has no os.unshare), then make sure `lo` is up:
    gVisor brings it up itself, Linux (--no-sandbox as root) does not."""
    if _LIBC.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _explain_name_failures(egress: bool) -> None:
    """A job's namespace has no resolver: a Python lookup that fails says why, instead of
    only "Name or service not known" (tools in other processes keep their own message)."""
    lookup = socket.getaddrinfo
    why = (
        "names are resolved by the pool's egress proxy: connect through HTTP_PROXY/HTTPS_PROXY/ALL_PROXY"
        if egress
        else "this pool allows no network access"
    )

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return lookup(host, *args, **kwargs)
        except socket.gaierror as exc:
            shown = host.decode(errors="replace") if isinstance(host, bytes) else host
            raise socket.gaierror(
                exc.errno, f"{exc.strerror} (network access denied by sandbox policy: {shown}; {why})"
            ) from None

    socket.getaddrinfo = getaddrinfo


def _hide_executor(names: list[str] | None = None) -> None:
    """Jobs import the stdlib (and their environment), never the executor or its
    dependencies: its install leaves sys.path, and every module loaded from there
    (executor.*, warmfleet.contract.messages; `names` if known) leaves sys.modules; the functions
    already bound here keep working."""
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _EXECUTOR_ROOT]
    for name in executor_modules() if names is None else names:
        sys.modules.pop(name, None)


def executor_modules() -> list[str]:
    """Names of the loaded modules of the executor's install. Listed by a session zygote
    before it forks: a session that walked every module itself would write to (and in
    gVisor copy, 2 MiB at a time) pages all over a preloaded zygote's heap."""
    inside = _EXECUTOR_ROOT + os.sep
    return [name for name, module in list(sys.modules.items()) if (getattr(module, "__file__", None) or "").startswith(inside)]


def _kill_leftovers(thorough: bool) -> None:
    """SIGKILL every process of this uid but ourselves: catches daemons that left the
    job's process group with setsid. /proc decides when none is left: on Linux kill(-1)
    reports success whenever any process exists, and in gVisor its ESRCH is no proof
    either (a fork bomb's child born while kill(-1) walks the task list is missed).
    If there may have been anything to kill (the runner says so: `thorough`; or kill(-1)
    signalled someone; or /proc shows someone), the list must then stay empty across a
    short gap, so a task that was still being born shows up and is killed too. A single
    clean scan was not enough after a fork bomb: a survivor reached the next job (CI).
    Zombies are harmless and are reaped by the supervisor, the subreaper."""
    deadline = time.monotonic() + 2.0
    found_any = thorough
    clean_passes = 0
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
            found_any = True  # in gVisor success means it signalled someone (Linux: anyone exists)
        except ProcessLookupError:
            pass
        if live_processes_of(os.getuid()):
            found_any, clean_passes = True, 0
        else:
            clean_passes += 1
            if not found_any or clean_passes >= 3:
                return
        if time.monotonic() > deadline:
            raise RuntimeError("processes of the job uid survived SIGKILL for 2 s")
        time.sleep(0.005 if found_any else 0.001)


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


def _limit(which: int, value: int) -> None:
    resource.setrlimit(which, (value, value))


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
    _limit(resource.RLIMIT_CPU, math.ceil(job.cpu_time))
    _limit(resource.RLIMIT_AS, _address_base + (job.memory_mb << 20))
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
    import threading  # loaded with the relay already; executor.* is gone (_hide_executor)

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
        status = _exit_status(exc)
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


def _run_bash(code_text: str) -> int:
    """bash -c CODE in a child (same session, uid and limits), so out/ is collected after.
    The wall-clock timer stays on us: SIGALRM ends this process, and the runner's group
    kill ends bash."""
    pid = os.fork()
    if pid == 0:
        try:
            os.execve(BASH, ["bash", "-c", code_text], dict(os.environ))
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
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


def _exit_status(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except BaseException:  # noqa: BLE001
        pass
    return 1


def _print_exception(exc: BaseException | None) -> None:
    """Print the traceback without the executor's frames, like `python file.py` would."""
    try:
        print_traceback(exc)  # type: ignore[arg-type]
    except BaseException:  # noqa: BLE001 - under memory pressure even printing may fail
        try:
            os.write(2, f"{type(exc).__name__}\n".encode())
        except BaseException:  # noqa: BLE001
            pass
