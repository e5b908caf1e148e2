"""Settings of the HTTP service, read from WARMFLEET_HTTP_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic import field_validator
from typing import Annotated


class HttpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARMFLEET_HTTP_", extra="ignore")

    # None: WARMFLEET_REDIS_URL, as for every client (dispatcher/settings.py)
    redis_url: str | None = None
    # The pools the service fronts; a tenant may use those of its own list among these.
    pools: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["default"])
    # Request bodies over these are refused with 413 naming the limit. File uploads (envd's
    # POST /files) have their own, larger limit: they travel into a session call's files.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # A request whose body has not fully arrived this long after it started is answered
    # 408 and closed: a slow or half-sent body holds no worker.
    body_timeout_s: float = Field(default=30.0, gt=0)
    # While a cell runs, a line is sent this often so proxies and the SDK's read timeout
    # see the stream alive (E2B's server does the same).
    keepalive_s: float = Field(default=5.0, gt=0)
    # A stream re-checks its key this often: a key revoked mid-stream ends it.
    key_recheck_s: float = Field(default=2.0, gt=0)
    # Sandboxes: E2B's default lifetime, and the most a client may ask for.
    default_timeout_s: int = Field(default=300, ge=1)
    max_timeout_s: int = Field(default=24 * 3600, ge=1)
    # How often each replica looks for sandboxes whose lifetime ran out.
    reap_every_s: float = Field(default=1.0, gt=0)
    open_timeout_s: float = Field(default=60.0, gt=0)

    @field_validator("pools", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value
