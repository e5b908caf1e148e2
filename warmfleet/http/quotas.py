"""A tenant's quotas, kept in Redis so every replica counts the same: requests per second
(a counter per wall-clock second), open sandboxes and executions in flight (sorted sets
of members scored by their deadline: http_quota_reserve.lua). Over a quota: 429 naming it."""

from __future__ import annotations

import math
import time

from warmfleet.contract import keys, lua
from warmfleet.http.errors import ApiError
from warmfleet.http.tenants import Tenant

RESERVE = lua.script("http_quota_reserve")  # warmfleet/contract/lua/http_quota_reserve.lua


class Quotas:
    def __init__(self, redis, clock=time.time) -> None:
        self.redis, self.clock = redis, clock
        self._reserve = redis.register_script(RESERVE)

    async def count_request(self, tenant: Tenant) -> None:
        if tenant.rate_per_s is None:
            return
        second = int(self.clock())
        key = keys.tenant_rate(tenant.name, second)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 2)
            count, _ = await pipe.execute()
        if count > math.ceil(tenant.rate_per_s):
            raise ApiError(429, f"rate quota exceeded: tenant {tenant.name!r} may make {tenant.rate_per_s:g} "
                                "requests per second", headers={"Retry-After": "1"})

    async def reserve_sandbox(self, tenant: Tenant, sandbox_id: str, ends_at: float) -> None:
        limit = -1 if tenant.max_sandboxes is None else tenant.max_sandboxes
        taken = await self._reserve(keys=[keys.tenant_sandboxes(tenant.name)],
                                    args=[self.clock(), sandbox_id, ends_at, limit])
        if not taken:
            raise ApiError(429, f"max_sandboxes quota reached: tenant {tenant.name!r} may keep "
                                f"{tenant.max_sandboxes} sandboxes open")

    async def release_sandbox(self, tenant_name: str, sandbox_id: str) -> None:
        await self.redis.zrem(keys.tenant_sandboxes(tenant_name), sandbox_id)

    async def reserve_run(self, tenant: Tenant, run_id: str, lease_s: float) -> None:
        if tenant.max_running is None:
            return  # unlimited: no round trip
        limit = tenant.max_running
        now = self.clock()
        taken = await self._reserve(keys=[keys.tenant_running(tenant.name)], args=[now, run_id, now + lease_s, limit])
        if not taken:
            raise ApiError(429, f"max_running quota reached: tenant {tenant.name!r} may run "
                                f"{tenant.max_running} executions at once")

    async def release_run(self, tenant: Tenant, run_id: str) -> None:
        if tenant.max_running is None:
            return
        await self.redis.zrem(keys.tenant_running(tenant.name), run_id)
