"""The executor supervisor's groups (slots, delivery, sessions, metrics) and its role."""

from __future__ import annotations

import os
import sys
from typing import Literal

from pydantic import BaseModel, model_validator

from warmfleet.contract.schema import FleetLimits
from warmfleet.settings.base import Role, setting
from warmfleet.settings.common import Capacity, Connection, Draining, Files, Logging, PodIdentity
from warmfleet.settings.egress import EgressShared


class Slots(BaseModel):
    """Job slots: limits, uids, workspaces, the job environment."""

    limits: FleetLimits = setting(
        FleetLimits(),
        "Budgets a job gets when it asks for none, and maxima it may not exceed: one variable per field, e.g. "
        "WARMFLEET_LIMITS__MAX_TIMEOUT=600 (fields: warmfleet.contract.schema.FleetLimits).",
    )
    uid_base: int = setting(61000, "Slot i runs its jobs as uid and gid uid_base + i.", ge=1000)
    workspace_root: str = setting("/tmp/warmfleet-ws", "Slot i's jobs run in workspace_root/i.")
    drop_privileges: bool = setting(True, "Jobs and sessions run as their own uid, with no capabilities (false only in in-process tests).")
    isolate_job_network: bool = setting(
        True,
        "Each job child gets a network namespace of its own (only lo), so nothing the pod reaches (Redis, the API "
        "server, the metrics port) is in a job's reach. Needs CAP_SYS_ADMIN in the pod, dropped before the job runs.",
    )
    python: str = setting(sys.executable, "The interpreter the runners and sessions run.", default_text="this interpreter")
    job_path: list[str] = setting([], "Directories appended to jobs' sys.path: a job environment's site-packages, read-only (JSON list).")
    warmup: list[str] | None = setting(
        None,
        "Code run once in the runner after the preload and in every spare before it is ready (JSON list); "
        "unset: a default for the preloaded modules; [] or \"\" disables.",
    )


class SandboxReport(BaseModel):
    """What runs the pod, as its snapshot publishes it."""

    # The pod cannot see these from inside gVisor: `warmfleet up` or the manifest says them.
    sandbox_runtime: str = setting("", "What runs this pod (runsc, none), as published in its snapshot (`warmfleet status`).")
    sandbox_version: str = setting("", "The sandbox runtime's version, as published in the pod's snapshot.")
    sandbox_platform: str = setting("", "The gVisor platform (ptrace, systrap, kvm), as published in the pod's snapshot.")


class Delivery(BaseModel):
    """Job delivery: stream reads, heartbeats, reclaiming, results."""

    result_ttl_s: int = setting(3600, "How long a job's result stays in Redis.", ge=10)
    # Below redis-py's 5 s socket timeout.
    block_ms: int = setting(1000, "How long one stream read blocks waiting for a job.", ge=10, le=4000)
    heartbeat_s: float = setting(1.0, "How often the supervisor publishes the pod's state and health.", gt=0)
    pod_ttl_s: float = setting(10.0, "A pod's published state expires this long after its last heartbeat.", gt=0)
    kill_grace_s: float = setting(0.5, "Between SIGTERM and SIGKILL for a job past its budget.", ge=0)
    runner_silence_s: float = setting(
        60.0,
        "A backstop: a runner silent this long past a job's timeout and grace is stuck; it is killed and "
        "restarted, and the job is read again.",
        gt=0,
    )
    max_deliveries: int = setting(3, "A job delivered more than this many times (it kept killing its executor) is failed, not run again.", ge=1)
    reclaim_idle_s: float = setting(
        30.0,
        "A job idle this long in a dead consumer's pending list is taken over by a live slot; running jobs "
        "refresh their claim every third of it.",
        ge=0.3,
    )


class Sessions(BaseModel):
    """Sessions: uids, workspaces, leases, lifetimes, drain."""

    session_uid_base: int = setting(62000, "Session i runs as uid session_uid_base + i.", ge=1000)
    session_workspace_root: str = setting("/tmp/warmfleet-ss", "Session i runs in session_workspace_root/i.")
    session_lease_s: float = setting(
        10.0, "An open session's record expires this long after its pod's last refresh: a client then knows it is lost.", gt=0,
    )
    session_open_reclaim_s: float = setting(
        5.0,
        "An open read by a pod that then went silent this long is taken over by a pod with room; a pod opening "
        "one refreshes its claim every third of it.",
        ge=0.3,
    )
    session_open_fault: Literal["", "after_read", "before_answer"] = setting(
        "", "Tests only: the pod stops at that point of its next session open and never answers it. Empty in production.",
    )
    max_session_idle_s: float = setting(3600.0, "The longest idle timeout a session may ask for (a session with no call that long is ended).", gt=0)
    max_session_lifetime_s: float = setting(86400.0, "The longest lifetime a session may ask for.", gt=0)
    session_drain_s: float = setting(
        60.0, "A draining pod (recycled, scaled in) waits this long for its sessions to end, then ends them as lost.", ge=0,
    )
    session_ended_ttl_s: int = setting(3600, "How long an ended session's record says why it ended.", ge=10)
    session_preload: bool = setting(
        True,
        "Sessions start with the preload imported (forked from a zygote that holds it). False: lean sessions that "
        "import on first use (an idle one costs ~8 MB of host memory in gVisor instead of ~58: "
        "docs/benchmarks/history.md).",
    )


class Metrics(BaseModel):
    """Pod metrics (Prometheus)."""

    metrics_port: int = setting(9464, "The pod's Prometheus /metrics port; 0 disables the HTTP server.", ge=0, le=65535)
    metrics_addr: str = setting("0.0.0.0", "The address /metrics listens on.")
    metrics_refresh_s: float = setting(5.0, "How often the stream gauges (backlog, pending) are read from Redis.", gt=0)


class EgressRelay(BaseModel):
    """Egress from the executor's side: the socket jobs' relays reach."""

    egress_socket: str | None = setting(
        None, "The Unix socket each job's relay connects to, to reach the pool's egress proxy (job uids must reach it).",
    )
    egress_gateway: str | None = setting(
        None,
        "Kubernetes: the pool's egress gateway (HOST:PORT); the supervisor then serves egress_socket itself and "
        "forwards to it.",
    )


class ExecutorSettings(Role, Connection, Logging, Files, PodIdentity, Capacity, Draining, Slots, SandboxReport, Delivery,
                       Sessions, Metrics, EgressRelay, EgressShared):
    """`python -m executor`, one pod's supervisor."""

    @model_validator(mode="after")
    def _needs_redis(self) -> "ExecutorSettings":
        if not self.redis_url:
            raise ValueError("WARMFLEET_REDIS_URL is required by the executor")
        return self

    @property
    def egress_enabled(self) -> bool:
        """The pool's egress proxy is configured (socket, control endpoint and secret: all or none)."""
        return bool(self.egress_socket and self.egress_control and self.egress_secret) and self.isolate_job_network

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
