"""How routers reach the fleet: through the public client only, one AsyncClient per pool.

    from warmfleet.http.fleet import fleet_of
    fleet = fleet_of(request)            # the app's Fleet (request.app.state.fleet)
    pool = fleet.pool_for(tenant, name)  # a pool the tenant may use, or 404 naming them
    client = fleet.client(pool)          # warmfleet.AsyncClient, shared by every request
    result = await client.run("print(1)")
    async with client.session() as s: ...

The clients are made on first use and closed with the app. `fleet.redis` is an asyncio
Redis connection for the service's own keys (tenants, sandboxes, quotas: warmfleet/keys.py).
"""

from __future__ import annotations

from fastapi import Request

from warmfleet import AsyncClient
from warmfleet.http.errors import ApiError
from warmfleet.http.settings import HttpSettings
from warmfleet.http.tenants import Tenant


class Fleet:
    def __init__(self, settings: HttpSettings, redis) -> None:
        self.settings, self.redis = settings, redis
        self.pools = list(settings.http_pools)
        self._clients: dict[str, AsyncClient] = {}

    def client(self, pool: str) -> AsyncClient:
        client = self._clients.get(pool)
        if client is None:
            if pool not in self.pools:
                raise ApiError(404, f"pool {pool!r} is not served here")
            client = self._clients[pool] = AsyncClient(self.settings.redis_url, pool=pool)
        return client

    def tenant_pools(self, tenant: Tenant) -> list[str]:
        """The pools a tenant may use here: its own, in its order, that this service fronts."""
        return [p for p in tenant.pools if p in self.pools]

    def pool_for(self, tenant: Tenant, name: str | None) -> str:
        """The pool `name` means for this tenant (None: its default), or 404 naming its pools."""
        usable = self.tenant_pools(tenant)
        if not usable:
            raise ApiError(403, f"tenant {tenant.name!r} has no pool served here (its pools: "
                                f"{', '.join(tenant.pools)}; served: {', '.join(self.pools)})")
        if name is None:
            return usable[0]
        if name not in usable:
            raise ApiError(404, f"unknown pool {name!r}: this key may use {', '.join(usable)}")
        return name

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


def fleet_of(request: Request) -> Fleet:
    """The app's Fleet: how a route reaches warmfleet (see the module docstring)."""
    return request.app.state.fleet
