"""Settings of one executor pod, read from WARMFLEET_* environment variables."""

from __future__ import annotations

import os
import socket
import sys
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from warmfleet.contract.schema import FleetLimits


class ExecutorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARMFLEET_", env_nested_delimiter="__", extra="ignore")

    redis_url: str
    pool: str = "default"
    pod_id: str = Field(default_factory=socket.gethostname)
    slots: int = Field(default=2, ge=1, le=64)
    limits: FleetLimits = FleetLimits()

    # Slot i runs its jobs as uid/gid uid_base + i, in workspace_root/i.
    uid_base: int = Field(default=61000, ge=1000)
    workspace_root: str = "/tmp/warmfleet-ws"
    drop_privileges: bool = True
    # Each job child gets a network namespace of its own (only `lo`), so nothing the pod
    # can reach (Redis, the API server, the metrics port) is in a job's reach. Needs
    # CAP_SYS_ADMIN in the pod, which the child drops with the rest before the job runs.
    isolate_job_network: bool = True
    # The pool's egress proxy (egress/). Set all three, or none (the pool reaches nothing):
    # the Unix socket each job's relay connects to (job uids must be able to reach it),
    # the control endpoint ("unix:PATH" out of jobs' reach, or "tcp:HOST:PORT") the
    # supervisor collects a job's usage from, and the secret the proxy checks tokens with.
    egress_socket: str | None = None
    egress_control: str | None = None
    egress_secret: str | None = None
    # Kubernetes: the pool's egress gateway ("HOST:PORT"); the supervisor then serves
    # egress_socket itself and forwards to it (executor/egress/forward.py).
    egress_gateway: str | None = None

    @property
    def egress_enabled(self) -> bool:
        return bool(self.egress_socket and self.egress_control and self.egress_secret) and self.isolate_job_network
    python: str = sys.executable
    # The job environment: directories appended to the jobs' sys.path (a job env's
    # site-packages, read-only), and modules the runner imports before forking jobs.
    job_path: list[str] = []
    preload: list[str] = []
    # Code run once in the runner after the preload and in every spare before it is ready
    # (executor/lean/jobenv.py); None: a default for the preloaded modules; "" disables.
    warmup: list[str] | None = None

    # What runs this pod, as published in its snapshot (`warmfleet status`): the pod cannot
    # see it from inside gVisor, so `warmfleet up` or the pool's manifest says it.
    sandbox_runtime: str = ""
    sandbox_version: str = ""
    sandbox_platform: str = ""

    result_ttl_s: int = Field(default=3600, ge=10)
    block_ms: int = Field(default=1000, ge=10, le=4000)  # below redis-py's 5 s socket timeout
    heartbeat_s: float = Field(default=1.0, gt=0)
    pod_ttl_s: float = Field(default=10.0, gt=0)
    drain_timeout_s: float = Field(default=330.0, gt=0)
    kill_grace_s: float = Field(default=0.5, ge=0)
    # A backstop: a runner silent this long past a job's timeout + grace is stuck (it enforces
    # the wall clock itself): it is killed and restarted, and the entry is read again.
    runner_silence_s: float = Field(default=60.0, gt=0)
    max_deliveries: int = Field(default=3, ge=1)
    # An entry idle this long in a consumer's pending list is taken over by a live slot;
    # running jobs refresh their claim every third of it.
    reclaim_idle_s: float = Field(default=30.0, ge=0.3)
    log_level: str = "INFO"
    # Sessions (executor/sessions/host.py): how many this pod holds at once (0: none); session i
    # runs as uid session_uid_base + i in session_workspace_root/i. They hold no job slot.
    sessions: int = Field(default=4, ge=0, le=256)
    session_uid_base: int = Field(default=62000, ge=1000)
    session_workspace_root: str = "/tmp/warmfleet-ss"
    # An open session's record expires this long after the pod's last refresh: a client
    # then knows the session is lost (its pod died).
    session_lease_s: float = Field(default=10.0, gt=0)
    # An open read by a pod that then went silent this long (it died before answering) is
    # taken over by a pod with room; a pod opening one refreshes its claim every third of it.
    session_open_reclaim_s: float = Field(default=5.0, ge=0.3)
    # Tests only: the pod stops at that point of its next open and never answers it (a pod
    # that dies mid-open, made deterministic: the test then kills it). "" in production.
    session_open_fault: Literal["", "after_read", "before_answer"] = ""
    max_session_idle_s: float = Field(default=3600.0, gt=0)
    max_session_lifetime_s: float = Field(default=86400.0, gt=0)
    # A draining pod (recycled, scaled in) waits this long for its sessions to end, then
    # ends them as lost, with the reason.
    session_drain_s: float = Field(default=60.0, ge=0)
    session_ended_ttl_s: int = Field(default=3600, ge=10)
    # Sessions start with the pool's preload imported (forked from a zygote that holds it:
    # the first `import pandas` is free). False: lean sessions, that import on first use
    # (an idle one costs ~8 MB of host memory in gVisor instead of ~58: docs/benchmarks/history.md).
    session_preload: bool = True
    # Liveness/readiness heartbeat file (warmfleet/contract/probe.py) in a directory jobs cannot write;
    # in Kubernetes an emptyDir shared with the GC sidecar. None: not written.
    health_file: str | None = None
    # Prometheus /metrics of this pod (executor/metrics.py); 0 disables the HTTP server.
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    metrics_addr: str = "0.0.0.0"
    metrics_refresh_s: float = Field(default=5.0, gt=0)

    @classmethod
    def load(cls) -> "ExecutorSettings":
        """Environment first, then the dotenv file named by WARMFLEET_CONFIG_FILE.

        Secrets (the Redis URL's password) belong in that file, mode 0600 in a 0700
        directory, or in a mounted Kubernetes Secret, never in the environment: inside
        gVisor a job running as another uid can read /proc/1/environ (checked; Linux
        would refuse), while the file is out of its reach.
        """
        return cls(_env_file=os.environ.get("WARMFLEET_CONFIG_FILE") or None)

    @property
    def consumer_prefix(self) -> str:
        return f"{self.pod_id}/"

    def slot_uid(self, slot: int) -> int:
        return self.uid_base + slot

    def slot_workspace(self, slot: int) -> str:
        return os.path.join(self.workspace_root, str(slot))

    def session_uid(self, index: int) -> int:
        return self.session_uid_base + index

    @property
    def session_preload_modules(self) -> list[str]:
        return list(self.preload) if self.session_preload else []

    def session_workspace(self, index: int) -> str:
        return os.path.join(self.session_workspace_root, str(index))
