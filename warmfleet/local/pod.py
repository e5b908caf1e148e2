"""A pod of a local fleet (fleet.py): one runsc sandbox holding an executor supervisor, or
with --no-sandbox a plain supervisor process; its settings file, start and drained stop."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Protocol

from warmfleet.local import rootfs
from warmfleet.settings import CONFIG_FILE, ExecutorSettings, FleetSettings, to_env, write_env_file
from warmfleet.local.sandbox import (
    SESSION_ROOT_IN_SANDBOX,
    SOCKET_DIR_IN_SANDBOX,
    WORKSPACE_ROOT_IN_SANDBOX,
    Sandbox,
    bundle_config,
)

if TYPE_CHECKING:
    from warmfleet.local.egress_proxy import LocalEgressProxy
    from warmfleet.local.jobenv import JobEnv

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
SLOT_UID_BASE = 61000
NO_SANDBOX_WARNING = (
    "WARNING: --no-sandbox: executors run as plain processes on this host, WITHOUT gVisor. "
    "Jobs can reach the network and the host kernel directly. Never use this for untrusted code."
)


class Fleet(Protocol):
    """What a pod needs of the LocalFleet that owns it (no import: the fleet imports us)."""

    settings: FleetSettings
    executor_values: dict[str, Any]
    runtime_dir: str
    socket_dir: str
    socket_path: str
    runsc: str
    runsc_root: str
    root: rootfs.RootFs | None
    egress: LocalEgressProxy | None
    job_env: JobEnv | None
    sandbox_runtime: str
    sandbox_version: str
    sandbox_platform: str

    def executor_url(self, socket_path: str) -> str: ...

    def record_process(self, pid: int) -> None: ...


class Pod:
    """A pod: a runsc sandbox, or with --no-sandbox a plain supervisor process."""

    def __init__(self, fleet: Fleet, index: int) -> None:
        self.fleet = fleet
        self.index = index
        self.pod_id = f"{socket.gethostname()[:16]}-p{index}-{secrets.token_hex(3)}"
        self.dir = os.path.join(fleet.runtime_dir, "pods", self.pod_id)
        self.log_path = os.path.join(fleet.runtime_dir, "logs", f"{self.pod_id}.log")
        self.sandbox: Sandbox | None = None
        self.proc: subprocess.Popen | None = None
        self.recycling = False  # the recycler drains and replaces it: the monitor keeps off
        # The supervisor's liveness heartbeat, in the 0700 socket directory (seen as /run inside).
        self.health_name = f"health-{self.pod_id}.json"
        self.health_path = os.path.join(fleet.socket_dir, self.health_name)

    def settings(self, redis_url: str, workspace_root: str, uid_base: int, session_root: str) -> ExecutorSettings:
        """This pod's executor settings: those given to `warmfleet up` (executor_values),
        then what the fleet decides for each pod."""
        s = self.fleet.settings
        values = dict(self.fleet.executor_values)
        values.update(
            redis_url=redis_url, pool=s.pool, pod_id=self.pod_id, slots=s.slots, workspace_root=workspace_root,
            uid_base=uid_base, sessions=s.sessions, session_workspace_root=session_root, session_uid_base=uid_base + 1000,
            drain_timeout_s=s.drain_timeout_s, sandbox_runtime=self.fleet.sandbox_runtime,
            sandbox_version=self.fleet.sandbox_version, sandbox_platform=self.fleet.sandbox_platform,
            job_path=[self.fleet.job_env.site_packages] if self.fleet.job_env else [], preload=list(s.preload),
            health_file=os.path.join(SOCKET_DIR_IN_SANDBOX if s.sandbox else self.fleet.socket_dir, self.health_name),
        )
        if self.fleet.egress is not None:
            values.update(self.fleet.egress.pod_settings(s.sandbox, SOCKET_DIR_IN_SANDBOX if s.sandbox else self.fleet.socket_dir))
        return ExecutorSettings.from_values(**values)

    def settings_file(self, redis_url: str, workspace_root: str, uid_base: int, session_root: str) -> str:
        """Write the pod's settings (Redis URL included) to a 0600 file in the 0700 socket
        directory, and return its name there. The environment stays secret-free."""
        name = f"pod-{self.pod_id}.env"
        settings = self.settings(redis_url, workspace_root, uid_base, session_root)
        write_env_file(os.path.join(self.fleet.socket_dir, name), to_env(settings))
        return name

    def remove_settings_file(self) -> None:
        for name in (f"pod-{self.pod_id}.env", self.health_name):
            try:
                os.unlink(os.path.join(self.fleet.socket_dir, name))
            except FileNotFoundError:
                pass

    def start(self) -> None:
        os.makedirs(self.dir, mode=0o711, exist_ok=True)
        os.chmod(os.path.dirname(self.dir), 0o711)
        args = [sys.executable, "-m", "executor"]
        s = self.fleet.settings
        if s.sandbox:
            assert self.fleet.root is not None
            url = self.fleet.executor_url(f"{SOCKET_DIR_IN_SANDBOX}/redis.sock")
            name = self.settings_file(url, WORKSPACE_ROOT_IN_SANDBOX, SLOT_UID_BASE, SESSION_ROOT_IN_SANDBOX)
            config = bundle_config(
                args=[rootfs.python_in_sandbox(), "-m", "executor"],
                # The project's packages come from the root-only directory (rootfs.py).
                env={
                    "PATH": SAFE_PATH,
                    CONFIG_FILE: f"{SOCKET_DIR_IN_SANDBOX}/{name}",
                    "PYTHONPATH": rootfs.PROJECT_DIR_IN_SANDBOX,
                },
                hostname=self.pod_id,
                root=self.fleet.root,
                socket_dir=self.fleet.socket_dir,
                slots=s.slots,
                workspace_mb=s.workspace_mb,
                sessions=s.sessions,
            )
            self.sandbox = Sandbox(
                self.fleet.runsc, self.fleet.runsc_root, os.path.join(self.dir, "bundle"), self.pod_id, self.log_path,
                platform=s.platform,
            )
            self.sandbox.start(config)
        else:
            print(NO_SANDBOX_WARNING, file=sys.stderr, flush=True)
            url = self.fleet.executor_url(self.fleet.socket_path)
            # Distinct uids per pod: on a shared host, kill(-1) as a slot uid must hit only that slot.
            name = self.settings_file(
                url, os.path.join(self.dir, "ws"), SLOT_UID_BASE + 300 * self.index, os.path.join(self.dir, "ss")
            )
            env = {"PATH": SAFE_PATH, CONFIG_FILE: os.path.join(self.fleet.socket_dir, name)}
            with open(self.log_path, "ab") as logf:
                self.proc = subprocess.Popen(
                    args, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True
                )
            self.fleet.record_process(self.proc.pid)

    def alive(self) -> bool:
        if self.sandbox is not None:
            return self.sandbox.alive()
        return self.proc is not None and self.proc.poll() is None

    def stop(self, drain_timeout: float) -> None:
        try:
            self._stop(drain_timeout)
        finally:
            self.remove_settings_file()

    def _stop(self, drain_timeout: float) -> None:
        if self.sandbox is not None:
            self.sandbox.destroy(drain_timeout)
        elif self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # first SIGTERM drains
            try:
                self.proc.wait(drain_timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()  # second one kills in-flight jobs
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
