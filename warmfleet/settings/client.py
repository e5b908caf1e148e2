"""The client's group and roles: a Client or AsyncClient, and the Celery forwarding task."""

from __future__ import annotations

from pydantic import BaseModel

from warmfleet.settings.base import Role, setting
from warmfleet.settings.common import Connection, Files


class ClientTuning(BaseModel):
    """Clients: Client, AsyncClient, `warmfleet run`."""

    idempotency_ttl_s: int = setting(86400, "How long an idempotency key maps to its job.", ge=1)
    # A safety net, not the wake-up path: results arrive by pub/sub.
    recheck_s: float = setting(
        1.0,
        "How often a waiting client re-reads the stored result in case a notification was lost (reconnect, "
        "another client's idempotent job); results normally arrive by pub/sub.",
        gt=0,
    )
    session_lost_grace_s: float = setting(
        10.0,
        "A session whose record is missing is declared lost only once it stayed missing this long (a pod starved "
        "by a fork bomb renews its lease late). A dead pod's sessions are lost lease + this + recheck_s after.",
        ge=0,
    )
    max_connections: int = setting(32, "Connections in the client's Redis pool.", ge=2)
    outage_s: float = setting(60.0, "How long wait() rides out an unreachable Redis before raising ConnectionError.", gt=0)


class Celery(BaseModel):
    """The Celery forwarding task."""

    celery_broker_url: str = setting(
        "redis://127.0.0.1:6379/0", "The ready-made Celery app's broker (`celery -A dispatcher.integrations.celery_task`).",
        secret=True,
    )
    celery_result_backend: str | None = setting(None, "The ready-made Celery app's result backend; unset: the broker.", secret=True)


class ClientSettings(Role, Connection, Files, ClientTuning):
    """`Client()` and `AsyncClient()`, and `warmfleet run`, `status`, `mcp`."""


class CelerySettings(Role, Connection, Files, ClientTuning, Celery):
    """The Celery worker that forwards code to the fleet."""
