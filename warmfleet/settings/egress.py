"""The egress proxy's groups: what it shares with the executors and `warmfleet up` (the
secret, the control endpoint, the policy), what only the proxy reads, and its role."""

from __future__ import annotations

from pydantic import BaseModel, model_validator

from warmfleet.settings.base import PREFIX, Role, setting
from warmfleet.settings.common import Files


class EgressShared(BaseModel):
    """Egress proxy endpoint and secret, shared by the proxy and the pool's executors."""

    egress_secret: str | None = setting(
        None,
        "The secret the pool's egress proxy checks job tokens with (at least 16 characters); the proxy and the "
        "pool's executors hold the same one. Put it in the WARMFLEET_CONFIG_FILE file.",
        secret=True,
        min_length=16,
    )
    egress_control: str | None = setting(
        None,
        "The egress proxy's control endpoint (unix:PATH out of jobs' reach, or tcp:HOST:PORT): where the proxy "
        "listens, and where supervisors ask it for a job's usage.",
    )


class EgressPolicy(BaseModel):
    """Egress policy: what a pool's jobs may reach (the proxy enforces it; `warmfleet up` starts the proxy with it)."""

    egress_allow: str = setting(
        "none",
        "The pool's egress policy: none, or comma-separated HOST[:PORT], *.DOMAIN[:PORT], CIDR[:PORT] entries.",
    )
    egress_hosts_file: str | None = setting(None, "A hosts file the egress proxy resolves names from first (tests, pinned names).")


class EgressProxy(BaseModel):
    """Egress proxy: its listener, per-job budgets and timeouts (`python -m egress`)."""

    egress_pool: str = setting("default", "The pool whose jobs this egress proxy serves.")
    egress_listen: str | None = setting(None, "Where jobs' relays connect to the egress proxy: unix:PATH or tcp:HOST:PORT.")
    egress_socket_mode: int = setting(0o666, "Mode of a unix listen socket (the job uids connect to it).")
    egress_max_connections_per_job: int = setting(64, "Connections one job may hold open through the proxy.", ge=1)
    egress_max_bytes_per_job: int = setting(256 << 20, "Bytes one job may move through the proxy, both ways.", ge=1)
    egress_connect_timeout_s: float = setting(10.0, "To connect to a destination.", gt=0)
    egress_request_timeout_s: float = setting(10.0, "For a job to send its request head.", gt=0)
    egress_idle_timeout_s: float = setting(300.0, "A tunnel with no bytes either way this long is closed.", gt=0)
    egress_job_ttl_s: float = setting(3600.0, "A job's usage is kept this long if no supervisor asks for it.", gt=0)
    egress_max_jobs_tracked: int = setting(10000, "Jobs whose usage the proxy keeps at once.", ge=1)
    egress_metrics_port: int = setting(0, "The egress proxy's Prometheus /metrics port; 0: none.", ge=0, le=65535)
    egress_metrics_addr: str = setting("127.0.0.1", "The address the egress proxy's /metrics listens on.")
    egress_log_level: str = setting("INFO", "Log level of the egress proxy.")


class EgressSettings(Role, Files, EgressShared, EgressPolicy, EgressProxy):
    """`python -m egress`, one pool's egress proxy."""

    @model_validator(mode="after")
    def _needs_endpoints(self) -> "EgressSettings":
        missing = [n for n in ("egress_secret", "egress_listen", "egress_control") if not getattr(self, n)]
        if missing:
            raise ValueError("the egress proxy needs " + ", ".join(PREFIX + n.upper() for n in missing))
        return self
