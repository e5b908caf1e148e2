"""The MCP service's bookkeeping, in-process (no fleet): a Connection per MCP session,
ended only by its own tenant, and forgotten once idle past the timeout (a fake clock)."""

from __future__ import annotations

import types

from warmfleet.http.fleet import Fleet
from warmfleet.http.mcp_service import IDLE_TIMEOUT_S, McpService
from warmfleet.http.settings import HttpSettings
from warmfleet.http.tenants import Tenant


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _ctx(tenant: Tenant, session_id: str):
    request = types.SimpleNamespace(scope={McpService.TENANT_SCOPE_KEY: tenant}, headers={"mcp-session-id": session_id})
    return types.SimpleNamespace(request_context=types.SimpleNamespace(request=request))


async def test_one_connection_per_session_ended_by_its_tenant_only_and_pruned_when_idle():
    clock = Clock()
    fleet = Fleet(HttpSettings(redis_url="redis://127.0.0.1:1"), redis=None)  # clients connect lazily
    service = McpService(fleet, quotas=None, clock=clock)
    alice, bob = Tenant(name="alice", pools=["default"]), Tenant(name="bob", pools=["default"])
    try:
        a1 = await service.connection_for(_ctx(alice, "s1"))
        assert await service.connection_for(_ctx(alice, "s1")) is a1
        assert await service.connection_for(_ctx(alice, "s2")) is not a1
        await service.ended("s1", "bob")  # not bob's to end
        assert "s1" in service.connections
        await service.connection_for(_ctx(bob, "s3"))
        clock.now += IDLE_TIMEOUT_S / 2
        service.connections["s2"].last_used = clock.now  # s2 was used since
        clock.now += IDLE_TIMEOUT_S / 2 + 1
        await service.prune()
        assert set(service.connections) == {"s2"}
        await service.ended("s2", "alice")
        assert service.connections == {}
    finally:
        await fleet.close()
