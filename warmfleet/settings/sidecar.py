"""The GC sidecar's groups (its recycle policy, its probes) and its role."""

from __future__ import annotations

from pydantic import BaseModel, model_validator

from warmfleet.settings.base import Role, setting
from warmfleet.settings.common import Connection, Files, Logging, PodIdentity


class RecyclePolicy(BaseModel):
    """When a pod must be recycled (gc_sidecar/policy.py decides): WARMFLEET_GC__MAX_AGE_S
    and so on; `warmfleet up --recycle-*` applies the same policy locally."""

    max_age_s: float = setting(3600.0, "Recycle a pod warm longer than this; 0: never by age.", ge=0)
    # Each pod's limit is max_age_s * (1 - age_jitter * u), u in [0, 1) fixed per pod.
    age_jitter: float = setting(
        0.2, "Spread of the age limit, so a fleet started together does not recycle together (never above max_age_s).",
        ge=0, lt=1,
    )
    max_jobs: int = setting(0, "Recycle a pod after this many jobs; 0: no limit.", ge=0)
    max_memory_mb: int = setting(0, "Recycle a pod whose executor (supervisor + runners) exceeds this RSS; 0: no limit.", ge=0)
    recycle_tainted: bool = setting(False, "Recycle a pod after a job hit a limit and left something behind (tainted).")
    max_recycling: int = setting(1, "Pods recycling at once, fleet-wide.", ge=1)
    min_serving_slots: int = setting(0, "Never recycle while the other pods would serve fewer slots than this.", ge=0)
    session_wait_s: float = setting(
        3600.0,
        "A pod with open sessions is not recycled for age or job count until they end, or until it is this long "
        "past its age limit (its drain then ends them as lost). Tainted or oversized pods recycle at once.",
        ge=0,
    )
    drain_timeout_s: float = setting(
        360.0,
        "How long the sidecar waits for its executor to drain and stop before giving up the recycle (longer than "
        "the executor's WARMFLEET_DRAIN_TIMEOUT_S, which it waits for).",
        gt=0,
    )
    check_s: float = setting(5.0, "How often the policy is checked.", gt=0)


class Sidecar(BaseModel):
    """GC sidecar: recycle policy, probes, eviction (`warmfleet gc`)."""

    gc: RecyclePolicy = setting(RecyclePolicy(), "The GC sidecar's recycle policy: one variable per field, e.g. WARMFLEET_GC__MAX_AGE_S=3600.")
    namespace: str | None = setting(None, "The pod's Kubernetes namespace; unset: the service account's.")
    kubernetes_host: str | None = setting(None, "The Kubernetes API server; unset: the in-cluster configuration.")
    probe_addr: str = setting("0.0.0.0", "The address the sidecar serves /livez and /readyz on.")
    probe_port: int = setting(8081, "The sidecar's HTTP probe port; 0 disables it.", ge=0, le=65535)
    eviction_deadline_s: float = setting(300.0, "How long the sidecar keeps asking for its pod's eviction.", gt=0)


class SidecarSettings(Role, Connection, Logging, Files, PodIdentity, Sidecar):
    """`warmfleet gc`, the GC sidecar of one executor pod."""

    @model_validator(mode="after")
    def _needs_redis_and_health_file(self) -> "SidecarSettings":
        if not self.redis_url:
            raise ValueError("WARMFLEET_REDIS_URL is required by the GC sidecar")
        if not self.health_file:
            raise ValueError("WARMFLEET_HEALTH_FILE is required by the GC sidecar: the executor's heartbeat file it reads")
        return self
