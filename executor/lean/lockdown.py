"""The lockdown a job child (executor/lean/child.py) and a session process
(executor/lean/session_process.py) put themselves under before they run anyone's code:
one sequence, so the two cannot drift apart.

Order matters and is the security boundary inside the sandbox:
detach (own session, default signals, stdio onto the pipes) -> close every other
descriptor -> a network namespace of its own (only `lo`: the pod's Redis, API server and
loopback services stay out of reach) -> drop to the uid/gid (which clears every
capability) -> kill whatever that uid left running -> empty the workspace -> rlimits ->
minimal environment, executor hidden.
"""

from __future__ import annotations

import ctypes
import fcntl
import io
import os
import resource
import signal
import socket
import struct
import sys
import time
from typing import TYPE_CHECKING

from executor.lean.jobenv import address_space_bytes
from executor.lean.procscan import live_processes_of
from executor.lean.workspace import empty_dir
from warmfleet.contract.messages import Confinement

if TYPE_CHECKING:
    from executor.lean.egress_relay import Relay

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
# Where the executor's packages are installed (boot.py puts it first on the runner's path).
EXECUTOR_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Resolved (and socket, fcntl, struct imported) in the runner, before it forks: done in
# each child, the imports alone cost ~35 syscalls and their unmarshalling per job.
_LIBC = ctypes.CDLL(None, use_errno=True)


def detach(out_w: int, err_w: int) -> None:
    """Right after the fork: a session and process group of its own (the supervisor kills
    it by group), default signal dispositions and an empty mask (nothing of the parent's
    handlers runs here), stdin on /dev/null, stdout and stderr on the pipes."""
    os.setsid()
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)


def lock_down(cfg: Confinement, keep: set[int], *, thorough: bool, egress: bool,
              relay_socket: str | None = None) -> "Relay | None":
    """Close every descriptor but 0-2 and `keep`, enter a network namespace of its own,
    become cfg's uid, kill its leftovers (`thorough`: there may be some, see
    kill_leftovers), empty and enter the workspace. `egress`: the pool allows some (a
    failed name lookup says how to reach it); `relay_socket`: the job's relay to the
    pool's egress proxy listens in the namespace (returned). Raises on any failure."""
    close_descriptors(keep)
    relay = None
    # Needs CAP_SYS_ADMIN, so only with drop_privileges (the process is root until then).
    if cfg.isolate_network and cfg.drop_privileges:
        enter_new_network_namespace()
        explain_name_failures(egress)
        if relay_socket:
            from executor.lean.egress_relay import RELAY_PORT, Relay

            relay = Relay(relay_socket, RELAY_PORT)
    if cfg.drop_privileges:
        # From root to a non-zero uid: the kernel (and gVisor) clears the permitted and
        # effective capability sets, CAP_SYS_ADMIN included (tests/hostile checks CapEff).
        os.setgroups([])
        os.setresgid(cfg.gid, cfg.gid, cfg.gid)
        os.setresuid(cfg.uid, cfg.uid, cfg.uid)
        kill_leftovers(thorough)
    empty_dir(cfg.workspace)
    os.chdir(cfg.workspace)
    return relay


def close_descriptors(keep: set[int]) -> None:
    """Every inherited descriptor but 0-2 and `keep` goes, in a few close_range calls rather
    than a /proc listing and a close per fd (~14 syscalls less per job)."""
    low = 3
    for fd in sorted(fd for fd in keep if fd >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def limit_resources(cfg: Confinement, preloaded: bool) -> int:
    """Per-process rlimits at the fleet maxima (a job's or call's own, lower, memory
    budget is set when it arrives). A preloaded process starts with the environment's
    modules mapped (~450 MiB of address space for numpy+pandas+matplotlib): its memory
    budgets count on top of that base, which is returned."""
    limit(resource.RLIMIT_NPROC, cfg.processes)
    limit(resource.RLIMIT_FSIZE, cfg.file_size_bytes)
    limit(resource.RLIMIT_NOFILE, cfg.open_files)
    limit(resource.RLIMIT_CORE, 0)
    base = address_space_bytes() if preloaded else 0
    limit(resource.RLIMIT_AS, base + (cfg.max_memory_mb << 20))
    return base


def limit(which: int, soft: int, hard: int | None = None) -> None:
    resource.setrlimit(which, (soft, soft if hard is None else hard))


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


def explain_name_failures(egress: bool) -> None:
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


def hide_executor(names: list[str] | None = None) -> None:
    """Jobs import the stdlib (and their environment), never the executor or its
    dependencies: its install leaves sys.path, and every module loaded from there
    (executor.*, warmfleet.contract.messages; `names` if known) leaves sys.modules; the functions
    already bound here keep working."""
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != EXECUTOR_ROOT]
    for name in executor_modules() if names is None else names:
        sys.modules.pop(name, None)


def executor_modules() -> list[str]:
    """Names of the loaded modules of the executor's install. Listed by a session zygote
    before it forks: a session that walked every module itself would write to (and in
    gVisor copy, 2 MiB at a time) pages all over a preloaded zygote's heap."""
    inside = EXECUTOR_ROOT + os.sep
    return [name for name, module in list(sys.modules.items()) if (getattr(module, "__file__", None) or "").startswith(inside)]


def kill_leftovers(thorough: bool) -> None:
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
