"""Settings of one pool's egress proxy, read from WARMFLEET_EGRESS_* variables and the
dotenv file named by WARMFLEET_CONFIG_FILE (the shared secret belongs there)."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EgressSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARMFLEET_EGRESS_", extra="ignore")

    pool: str = "default"
    allow: str = "none"  # comma-separated policy entries (egress/policy.py)
    secret: str = Field(min_length=16)
    # Where jobs' relays connect, and where supervisors ask for a job's usage:
    # "unix:/path" or "tcp:HOST:PORT". The control endpoint must be out of jobs' reach.
    listen: str
    control: str
    socket_mode: int = 0o666  # a unix listen socket: the job uids connect to it
    hosts_file: str | None = None  # names resolved here first (tests, pinned names)
    max_connections_per_job: int = Field(default=64, ge=1)
    max_bytes_per_job: int = Field(default=256 << 20, ge=1)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)  # to send the request head
    idle_timeout_s: float = Field(default=300.0, gt=0)  # a tunnel with no bytes either way
    job_ttl_s: float = Field(default=3600.0, gt=0)  # usage kept this long if nobody asks
    max_jobs_tracked: int = Field(default=10000, ge=1)
    metrics_port: int = Field(default=0, ge=0, le=65535)  # 0: no /metrics
    metrics_addr: str = "127.0.0.1"
    log_level: str = "INFO"

    @classmethod
    def load(cls) -> "EgressSettings":
        return cls(_env_file=os.environ.get("WARMFLEET_CONFIG_FILE") or None)
