"""Settings of the GC sidecar, read like the executor's: WARMFLEET_* variables, then the
dotenv file named by WARMFLEET_CONFIG_FILE (in Kubernetes a mounted Secret: the Redis
password never sits in an environment variable)."""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gc_sidecar.policy import RecyclePolicy
from warmfleet.contract.probe import DEFAULT_HEALTH_FILE


class SidecarSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARMFLEET_", env_nested_delimiter="__", extra="ignore")

    redis_url: str
    pool: str = "default"
    pod_id: str = Field(default_factory=socket.gethostname)  # the pod's name in Kubernetes
    namespace: str | None = None  # default: the service account's namespace
    health_file: str = DEFAULT_HEALTH_FILE
    probe_addr: str = "0.0.0.0"
    probe_port: int = Field(default=8081, ge=0, le=65535)  # 0 disables the HTTP probes
    eviction_deadline_s: float = Field(default=300.0, gt=0)
    kubernetes_host: str | None = None  # default: in-cluster configuration
    gc: RecyclePolicy = RecyclePolicy()
    log_level: str = "INFO"

    @classmethod
    def load(cls) -> "SidecarSettings":
        return cls(_env_file=os.environ.get("WARMFLEET_CONFIG_FILE") or None)
