"""One pod as a long-lived runsc (gVisor) sandbox: its OCI bundle and its lifecycle.

The bundle (docs/design/field-notes.md): the fleet's minimal root (rootfs.py), read-only, no
network (`--network=none`), Redis reached through a bind-mounted Unix socket
(`--host-uds=open`), one size-bounded tmpfs per slot as its workspace (nothing else is
writable), new pid/ipc/uts/mount/network namespaces, and only the capabilities the
supervisor needs: SETUID/SETGID (drop to slot uids), KILL (signal them), CHOWN (give each
slot its workspace), SYS_ADMIN (a network namespace per job child; dropped before the job
runs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import psutil

from warmfleet.local.rootfs import RootFs

CAPABILITIES = ["CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_SYS_ADMIN"]
SOCKET_DIR_IN_SANDBOX = "/run"
WORKSPACE_ROOT_IN_SANDBOX = "/tmp/ws"
SESSION_ROOT_IN_SANDBOX = "/tmp/ss"


class RunscMissing(RuntimeError):
    pass


def find_runsc() -> str:
    path = shutil.which("runsc")
    if path is None:
        raise RunscMissing(
            "runsc (gVisor) is not installed. Install it with `apt-get install runsc` "
            "(Debian/Ubuntu), or pass --no-sandbox to run executors as plain processes "
            "WITHOUT isolation."
        )
    return path


def bundle_config(
    *,
    args: list[str],
    env: dict[str, str],
    hostname: str,
    root: RootFs,
    socket_dir: str,
    slots: int,
    workspace_mb: int,
    sessions: int = 0,
) -> dict:
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=1m"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": SOCKET_DIR_IN_SANDBOX, "type": "bind", "source": socket_dir, "options": ["rbind", "rw"]},
    ]
    for source, destination in root.binds:
        mounts.append({"destination": destination, "type": "bind", "source": source, "options": ["rbind", "ro"]})
    for slot in range(slots):
        mounts.append(
            {
                "destination": f"{WORKSPACE_ROOT_IN_SANDBOX}/{slot}",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=700", f"size={workspace_mb}m"],
            }
        )
    for index in range(sessions):  # one bounded tmpfs per session, like a slot's
        mounts.append(
            {
                "destination": f"{SESSION_ROOT_IN_SANDBOX}/{index}",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=700", f"size={workspace_mb}m"],
            }
        )
    return {
        "ociVersion": "1.0.0",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": [f"{k}={v}" for k, v in env.items()],
            "cwd": "/",
            "capabilities": {k: CAPABILITIES for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}],
            "noNewPrivileges": True,
        },
        "root": {"path": root.path, "readonly": True},
        "hostname": hostname[:63],
        "mounts": mounts,
        "linux": {"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")]},
    }


class Sandbox:
    """A runsc container by id, under a private runsc --root."""

    def __init__(
        self, runsc: str, state_root: str, bundle_dir: str, container_id: str, log_path: str, platform: str = "ptrace"
    ) -> None:
        self.runsc = runsc
        self.platform = platform
        self.state_root = state_root
        self.bundle_dir = bundle_dir
        self.id = container_id
        self.log_path = log_path
        self.pid: int | None = None

    def _cmd(self, *args: str) -> list[str]:
        return [self.runsc, "--root", self.state_root, "--network=none", "--host-uds=open",
                f"--platform={self.platform}", *args]

    def start(self, config: dict) -> None:
        os.makedirs(self.bundle_dir, mode=0o700, exist_ok=True)
        with open(os.path.join(self.bundle_dir, "config.json"), "w") as f:
            json.dump(config, f)
        with open(self.log_path, "ab") as log:
            subprocess.run(
                self._cmd("run", "--detach", "--bundle", self.bundle_dir, self.id),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True, timeout=60,
            )
        self.pid = self.state().get("pid")

    def state(self) -> dict:
        out = subprocess.run(self._cmd("state", self.id), capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            return {"status": "missing"}
        return json.loads(out.stdout)

    def alive(self) -> bool:
        """Cheap: the sandbox process exits when its supervisor does."""
        return self.pid is not None and _running(self.pid)

    def signal(self, sig: str) -> None:
        subprocess.run(self._cmd("kill", self.id, sig), capture_output=True, timeout=30)

    def exec(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a command inside the sandbox (operators: inspect; tests: inject faults)."""
        return subprocess.run(self._cmd("exec", self.id, *args), capture_output=True, text=True, timeout=timeout)

    def wait_stopped(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.05)  # poll with a deadline: runsc offers no wait after detach
        return not self.alive()

    def destroy(self, drain_timeout: float) -> None:
        """SIGTERM (drain), wait, SIGKILL if needed, delete. Leaves no runsc state."""
        if self.alive():
            self.signal("TERM")
            if not self.wait_stopped(drain_timeout):
                self.signal("KILL")
                self.wait_stopped(10)
        subprocess.run(self._cmd("delete", "--force", self.id), capture_output=True, timeout=30)


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie runs nothing)."""
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False
