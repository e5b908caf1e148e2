"""What the pod's pid 1 does before its heavy imports: become the subreaper, prepare the
slot workspaces and spawn the slot runners. Inside gVisor the supervisor's imports (redis,
asyncio, prometheus) take ~0.5 s of one core and a runner's boot ~0.1 s: spawned first,
the runners come up on the other core meanwhile, and the pod is ready that much sooner.

Nothing here imports asyncio or redis.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket

from executor.lean.jobenv import default_warmup
from warmfleet.settings import ExecutorSettings
from warmfleet.contract.messages import RunnerConfig

log = logging.getLogger("warmfleet.executor")

PR_SET_CHILD_SUBREAPER = 36

# The runner's interpreter is started lean: no site, no environment, no user paths.
_BOOT = "import sys; sys.path.insert(0, sys.argv.pop(1)); from executor.lean import runner; sys.exit(runner.main())"
_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}


class SpawnedRunner:
    """A runner process and the supervisor's end of its channel, not yet attached to asyncio."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid, self.sock = pid, sock


def spawn_runner(python: str, cfg: RunnerConfig) -> SpawnedRunner:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    os.set_inheritable(child.fileno(), True)
    argv = [python, "-S", "-I", "-c", _BOOT, _SOURCE_ROOT, str(child.fileno()), cfg.to_json()]
    try:
        # An empty environment: the runner and its jobs never see the supervisor's secrets.
        pid = os.posix_spawn(python, argv, RUNNER_ENV)
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    return SpawnedRunner(pid, parent)


def runner_config(settings: ExecutorSettings, index: int) -> RunnerConfig:
    """What a slot's runner needs; no secrets: it travels on the command line."""
    lim = settings.limits
    return RunnerConfig(
        slot=index,
        uid=settings.slot_uid(index),
        gid=settings.slot_uid(index),
        workspace=settings.slot_workspace(index),
        drop_privileges=settings.drop_privileges,
        isolate_network=settings.isolate_job_network,
        egress_socket=settings.egress_socket if settings.egress_enabled else None,
        output_bytes=lim.output_bytes,
        file_size_bytes=lim.file_size_bytes,
        processes=lim.processes,
        open_files=lim.open_files,
        max_memory_mb=lim.max_memory_mb,
        max_cpu_time=lim.max_cpu_time,
        kill_grace_s=settings.kill_grace_s,
        max_files=lim.max_files,
        max_output_files_bytes=lim.max_output_files_bytes,
        job_path=list(settings.job_path),
        preload=list(settings.preload),
        warmup=default_warmup(settings.preload) if settings.warmup is None else list(settings.warmup),
    )


def prepare_workspaces(settings: ExecutorSettings) -> None:
    for index in range(settings.slots):
        path = settings.slot_workspace(index)
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # before chown: without CAP_FOWNER root cannot chmod what it gave away
        if settings.drop_privileges:
            uid = settings.slot_uid(index)
            os.chown(path, uid, uid)


def prepare_session_workspaces(settings: ExecutorSettings) -> None:
    for index in range(settings.sessions):
        path = settings.session_workspace(index)
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)
        if settings.drop_privileges:
            os.chown(path, settings.session_uid(index), settings.session_uid(index))


def become_subreaper() -> None:
    """Orphans of jobs (daemons) reparent to us, so we can reap them, also outside gVisor."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except OSError:
        log.warning("could not become a child subreaper")


def start(settings: ExecutorSettings) -> list[SpawnedRunner]:
    """Subreaper, workspaces, then one runner per slot (the supervisor adopts them)."""
    become_subreaper()
    prepare_workspaces(settings)
    prepare_session_workspaces(settings)
    return [spawn_runner(settings.python, runner_config(settings, i)) for i in range(settings.slots)]
