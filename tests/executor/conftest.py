"""Executor parts in-process against the real redis-server of the session (tests/conftest.py)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from executor import store

POOL = "default"


@pytest.fixture
async def r(redis_url):
    """An asyncio connection with the default pool's consumer group made."""
    conn = aioredis.from_url(redis_url, decode_responses=True)
    await store.ensure_group(conn, POOL)
    yield conn
    await conn.aclose()
