"""Client settings, read from WARMFLEET_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARMFLEET_", extra="ignore")

    redis_url: str | None = None
    pool: str = "default"
    idempotency_ttl_s: int = Field(default=86400, ge=1)
    # A safety net, not the wake-up path: results arrive by pub/sub; if a notification is
    # lost (reconnect, another client's idempotent job) the stored result is re-read this often.
    recheck_s: float = Field(default=1.0, gt=0)
    # A session whose record is missing is declared lost (SessionLost) only once it stayed
    # missing this long: a pod starved by a fork bomb renews its lease late and the record
    # comes back. A dead pod's sessions are lost lease + this + recheck_s after its death.
    session_lost_grace_s: float = Field(default=10.0, ge=0)
    max_connections: int = Field(default=32, ge=2)
    # How long wait() rides out an unreachable Redis before raising ConnectionError.
    outage_s: float = Field(default=60.0, gt=0)
