"""Tenants and their API keys, in Redis, shared by every replica.

A key is printed once when made (`warmfleet keys add`); Redis keeps only its sha256 (the
field of keys.api_keys()) beside the tenant it opens. The keys are 256 random bits, so a
plain hash is as strong as a slow one and costs one HGET per request: a revoked key is
refused by every replica on its next request, and streams re-check theirs while they run.
A key is never logged; `keys list` shows a key id (the hash's first 12 hex digits).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time

from pydantic import BaseModel, ConfigDict, Field, field_validator

from warmfleet.contract import keys

KEY_PREFIX = "wf_"
KEY_ID_LEN = 12
TENANT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class Tenant(BaseModel):
    """What a key opens: the tenant's name, its pools (the first is its default, which
    E2B's stock template names map to) and its quotas (None: unlimited)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    pools: list[str] = Field(min_length=1)
    max_sandboxes: int | None = Field(default=None, ge=0)
    max_running: int | None = Field(default=None, ge=0)
    rate_per_s: float | None = Field(default=None, gt=0)
    created_at: float = Field(default_factory=time.time)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not TENANT_NAME_RE.match(value):
            raise ValueError("a tenant name is 1-63 chars of letters, digits, '_', '.', '-'")
        return value

    @field_validator("pools")
    @classmethod
    def _pools(cls, value: list[str]) -> list[str]:
        for pool in value:
            keys.check_pool(pool)
        return value

    @property
    def default_pool(self) -> str:
        return self.pools[0]


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def parse_rate(text: str) -> float:
    """`--rate 10/s` (or `10`): requests per second."""
    number = text.strip().removesuffix("/s")
    try:
        rate = float(number)
    except ValueError:
        raise ValueError(f"rate {text!r}: write requests per second, e.g. 10/s") from None
    if not rate > 0:
        raise ValueError(f"rate {text!r} must be above 0")
    return rate


class TenantStore:
    """The keys hash, for a sync redis client (the CLI) or an asyncio one (the service):
    the methods that do I/O come in both flavours, sharing the encoding here."""

    def __init__(self, redis) -> None:
        self.redis = redis

    # -- sync (warmfleet keys ...) ------------------------------------------------------
    def add(self, tenant: Tenant) -> str:
        key = new_key()
        self.redis.hset(keys.api_keys(), key_hash(key), tenant.model_dump_json())
        return key

    def list(self) -> list[tuple[str, Tenant]]:
        rows = self.redis.hgetall(keys.api_keys())
        out = [(_text(h)[:KEY_ID_LEN], Tenant.model_validate_json(v)) for h, v in rows.items()]
        return sorted(out, key=lambda row: (row[1].name, row[1].created_at))

    def revoke(self, key_or_id: str) -> int:
        """Remove a key, given the key itself or its id from `keys list`. Returns how many
        were removed (an id that matches several keys removes none and says so)."""
        matches = self._matching(key_or_id, [_text(h) for h in self.redis.hkeys(keys.api_keys())])
        if len(matches) != 1:
            return -len(matches) if matches else 0
        return self.redis.hdel(keys.api_keys(), matches[0])

    def count(self) -> int:
        return self.redis.hlen(keys.api_keys())

    @staticmethod
    def _matching(key_or_id: str, hashes: list[str]) -> list[str]:
        if key_or_id.startswith(KEY_PREFIX):
            wanted = key_hash(key_or_id)
            return [h for h in hashes if h == wanted]
        if len(key_or_id) < 6:
            return []
        return [h for h in hashes if h.startswith(key_or_id.lower())]

    # -- async (the service) ------------------------------------------------------------
    async def lookup(self, key: str) -> Tenant | None:
        raw = await self.redis.hget(keys.api_keys(), key_hash(key))
        return None if raw is None else Tenant.model_validate_json(raw)

    async def any_keys(self) -> bool:
        return bool(await self.redis.hlen(keys.api_keys()))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def dump(tenant: Tenant) -> dict:
    return json.loads(tenant.model_dump_json())
