"""The local runtime's group (`warmfleet up`: pods on this machine) and its role, which
also carries every executor and egress-proxy setting: those set for `warmfleet up` reach
its pods and its egress proxy (warmfleet/local/pod.py writes them from here)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from warmfleet.settings.base import Role, setting
from warmfleet.settings.common import Capacity, Connection, Draining, Files, Logging, PodIdentity
from warmfleet.settings.egress import EgressPolicy, EgressProxy, EgressShared
from warmfleet.settings.executor import (
    Delivery, EgressRelay, ExecutorSettings, Metrics, SandboxReport, Sessions, Slots,
)

# How gVisor intercepts syscalls (runsc --platform): ptrace measured fastest here.
DEFAULT_PLATFORM = "ptrace"


class LocalRuntime(BaseModel):
    """Local fleet: `warmfleet up` on this machine."""

    pods: int = setting(1, "Pods `warmfleet up` runs on this machine.", ge=1, le=64)
    sandbox: bool = setting(True, "Run each pod in a gVisor (runsc) sandbox; false: plain processes, unsafe.")
    platform: Literal["ptrace", "systrap", "kvm"] = setting(DEFAULT_PLATFORM, "The gVisor platform (runsc --platform).")
    workspace_mb: int = setting(64, "Size of each slot's and session's workspace (tmpfs) in a local pod.", ge=1)
    monitor_s: float = setting(0.5, "How often `warmfleet up` checks its pods (and replaces a dead one).", gt=0)
    read_only_paths: list[str] = setting(
        [], "More host paths shown to local pods, read-only at their own paths (JSON list); the interpreter and "
        "venv the fleet runs from always are.",
    )
    requirements: str | None = setting(
        None, "A pip requirements file built once into a cached venv whose site-packages jobs import from.",
    )
    env_cache: str | None = setting(
        None, "Where built job environments are cached.",
        default_text="/var/cache/warmfleet/envs as root, else ~/.cache/warmfleet/envs",
    )


class Install(BaseModel):
    """Installing gVisor: read by scripts/install-runsc (a shell script), listed here so the names are known."""

    runsc_suite: str = setting("trixie", "The gVisor apt suite scripts/install-runsc installs runsc from.")
    runsc_min: str = setting("20240729", "The oldest runsc build scripts/install-runsc accepts (YYYYMMDD).")


class FleetSettings(Role, Connection, Logging, Files, PodIdentity, Capacity, Draining, Slots, SandboxReport, Delivery,
                    Sessions, Metrics, EgressRelay, EgressShared, EgressPolicy, EgressProxy, LocalRuntime):
    """`warmfleet up`, a fleet on this machine.

    The executor's groups without its role's checks (the Redis URL is optional: an embedded
    Redis by default); the executor settings set here go to its pods."""


# What `warmfleet up` passes on, when set for it: to each pod its executor settings (not
# where this process keeps its own files and state), to its egress proxy the proxy's tuning.
POD_FIELDS = frozenset(ExecutorSettings.model_fields) - frozenset(Files.model_fields)
EGRESS_PROXY_FIELDS = frozenset(EgressProxy.model_fields)
