"""The pool's egress proxy (`python -m egress`) as a process owned by `warmfleet up`.

Its job socket lives in a directory of its own that pods see at EGRESS_DIR_IN_SANDBOX
(job uids connect to it: jobs reach the proxy, nothing else); its control socket lives
in the fleet's 0700 socket directory beside Redis's, out of jobs' reach. The shared
secret travels in a 0600 settings file, never on a command line or in an environment.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

from egress.policy import Policy
from warmfleet.local import child_process
from warmfleet.settings import CONFIG_FILE, EGRESS_PROXY_FIELDS, EgressSettings, FleetSettings, set_values, to_env, write_env_file

EGRESS_DIR_IN_SANDBOX = "/tmp/warmfleet-egress"  # under the sandbox's own /tmp tmpfs
JOB_SOCKET = "egress.sock"
CONTROL_SOCKET = "egress-control.sock"


class LocalEgressProxy:
    def __init__(self, runtime_dir: str, socket_dir: str, settings: FleetSettings) -> None:
        Policy.parse(settings.egress_allow)  # a bad entry fails `warmfleet up` before anything starts
        self.dir = os.path.join(runtime_dir, "egress")
        self.socket_dir = socket_dir
        self.settings = settings
        self.secret = secrets.token_hex(24)
        self.job_socket = os.path.join(self.dir, JOB_SOCKET)
        self.control_socket = os.path.join(socket_dir, CONTROL_SOCKET)
        self.log_path = os.path.join(runtime_dir, "logs", "egress.log")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> None:
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        os.chmod(self.dir, 0o755)
        conf = os.path.join(self.socket_dir, "egress.env")
        s = self.settings
        # The proxy's tuning set for `warmfleet up` (budgets, timeouts, metrics) goes on to it.
        tuning = set_values(s, EGRESS_PROXY_FIELDS - {"egress_pool", "egress_listen"})
        proxy = EgressSettings.from_values(
            **tuning, egress_pool=s.pool, egress_allow=s.egress_allow, egress_secret=self.secret,
            egress_listen=f"unix:{self.job_socket}", egress_control=f"unix:{self.control_socket}",
            egress_hosts_file=os.path.abspath(s.egress_hosts_file) if s.egress_hosts_file else None,
        )
        write_env_file(conf, to_env(proxy))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), CONFIG_FILE: conf}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "egress"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not (os.path.exists(self.job_socket) and os.path.exists(self.control_socket)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the egress proxy exited with {self.proc.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the egress proxy did not start within {timeout} s; see {self.log_path}")
            time.sleep(0.02)  # readiness poll with a deadline

    def pod_settings(self, in_sandbox: bool, socket_dir_in_pod: str) -> dict[str, str]:
        """A pod's executor settings for this proxy (fields of ExecutorSettings)."""
        job_socket = f"{EGRESS_DIR_IN_SANDBOX}/{JOB_SOCKET}" if in_sandbox else self.job_socket
        return {
            "egress_socket": job_socket,
            "egress_control": f"unix:{socket_dir_in_pod}/{CONTROL_SOCKET}",
            "egress_secret": self.secret,
        }

    def stop(self, timeout: float = 10.0) -> None:
        child_process.terminate(self.proc, timeout)
