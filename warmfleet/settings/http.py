"""The HTTP front door's group and role (`warmfleet serve`, `warmfleet up --http`)."""

from __future__ import annotations

from pydantic import BaseModel

from warmfleet.settings.base import Role, setting
from warmfleet.settings.common import Connection, Files


class HttpService(BaseModel):
    """The HTTP front door (`warmfleet serve`): E2B, SandboxFusion, /v1, MCP over HTTP."""

    http_listen: str = setting("127.0.0.1:8000", "Where `warmfleet serve` listens, HOST:PORT.")
    http_pools: list[str] = setting(
        ["default"], "The pools the service fronts (JSON list); a tenant uses those of its own list among them.",
    )
    http_metrics_port: int = setting(0, "The service's Prometheus /metrics port (apart from the tenants' port); 0: none.",
                                     ge=0, le=65535)
    http_metrics_addr: str = setting("0.0.0.0", "The address the service's /metrics listens on.")
    http_max_body_bytes: int = setting(4 << 20, "A request body over this is refused with 413 naming the limit.", ge=1024)
    http_max_upload_bytes: int = setting(
        32 << 20, "The same for file uploads (E2B's POST /files), which travel as a session call's input files.", ge=1024,
    )
    http_body_timeout_s: float = setting(
        30.0, "A request whose body has not fully arrived this long after it started is answered 408 and closed.", gt=0,
    )
    http_keepalive_s: float = setting(5.0, "While a streamed cell or job is quiet, a keepalive line this often.", gt=0)
    http_key_recheck_s: float = setting(2.0, "How often a running stream checks its API key is still there (revocation).",
                                        gt=0)
    http_default_timeout_s: int = setting(300, "An E2B sandbox's lifetime when the client asks none (E2B's default).", ge=1)
    http_max_timeout_s: int = setting(
        86400, "The longest lifetime a sandbox or /v1 session may ask for (the pods clamp it to theirs).", ge=1,
    )
    http_reap_every_s: float = setting(1.0, "How often each replica closes the sandboxes whose lifetime ran out.", gt=0)
    http_open_timeout_s: float = setting(60.0, "How long opening a sandbox or session may wait for a pod with room.", gt=0)


class HttpSettings(Role, Files, Connection, HttpService):
    """`warmfleet serve`: the HTTP front door, in front of the pools it names."""
