"""What /mcp runs once the first MCP request arrives (warmfleet/http/mcp.py imports this
module then: the `mcp` package costs the service ~24 MB, which a service that never
serves MCP should not pay): the MCP server with warmfleet's tools, its session manager,
and one Connection per MCP session.

MCP sessions live in this replica's memory (the protocol's streams are held open here),
so several replicas need sticky routing for /mcp; every other route is stateless.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.transport_security import TransportSecuritySettings

from dispatcher.integrations.mcp_server import Connection, Context, Refused, build_server
from warmfleet.http.errors import ApiError
from warmfleet.http.fleet import Fleet
from warmfleet.http.mcp import PATH, SESSION_HEADER
from warmfleet.http.tenants import Tenant

TENANT_SCOPE_KEY = "warmfleet.tenant"
IDLE_TIMEOUT_S = 600.0  # an MCP session (and its fleet session) idle this long ends
MAX_TIMEOUT_S = 60.0  # a run_python call's wall clock is capped here, whatever the agent asks
SESSION_LIFETIME_S = 3600.0  # AsyncClient.session's default max_lifetime: what a session reserves
PRUNE_EVERY_S = 30.0


class TenantConnection(Connection):
    """A Connection for one MCP session of one tenant: its fleet session counts against
    the tenant's max_sandboxes quota while it is open."""

    def __init__(self, client, quotas, tenant: Tenant, clock: Callable[[], float]) -> None:
        super().__init__(client, idle_timeout=IDLE_TIMEOUT_S)
        self.quotas, self.tenant, self.clock = quotas, tenant, clock
        self.reservation = f"mcp-{uuid.uuid4().hex}"
        self.last_used = clock()

    async def open_session(self):
        try:
            await self.quotas.reserve_sandbox(self.tenant, self.reservation, time.time() + SESSION_LIFETIME_S)
        except ApiError as exc:
            raise Refused(exc.message) from None
        try:
            return await super().open_session()
        except BaseException:
            await self.quotas.release_sandbox(self.tenant.name, self.reservation)
            raise

    async def run(self, code: str, timeout: float, memory_mb: int):
        self.last_used = self.clock()
        return await super().run(code, timeout, memory_mb)

    async def reset(self, wait: float | None = None) -> None:
        had = self.session is not None
        await super().reset(wait)
        if had:
            await self.quotas.release_sandbox(self.tenant.name, self.reservation)


class McpService:
    """The MCP server, its session manager, and the Connection of each MCP session."""

    TENANT_SCOPE_KEY = TENANT_SCOPE_KEY

    def __init__(self, fleet: Fleet, quotas, clock: Callable[[], float] = time.monotonic) -> None:
        self.fleet, self.quotas, self.clock = fleet, quotas, clock
        self.connections: dict[str, TenantConnection] = {}
        self.server = build_server(max_timeout=MAX_TIMEOUT_S, connection_for=self.connection_for)
        # The service checks API keys itself (not cookies), so a DNS-rebinding page gains
        # nothing without a key; the Host header behind a Service is not 127.0.0.1 anyway.
        self.server.streamable_http_app(
            streamable_http_path=PATH, session_idle_timeout=IDLE_TIMEOUT_S,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.manager = self.server.session_manager
        self.running = asyncio.Event()

    @staticmethod
    def owner(tenant: Tenant) -> AuthenticatedUser:
        """The tenant as the transport's "user": it binds each MCP session to its creator."""
        return AuthenticatedUser(AccessToken(token="-", client_id=tenant.name, scopes=[]))

    async def connection_for(self, ctx: Context) -> TenantConnection:
        request = ctx.request_context.request
        tenant: Tenant = request.scope[TENANT_SCOPE_KEY]
        session_id = request.headers.get(SESSION_HEADER) or ""
        connection = self.connections.get(session_id)
        if connection is None:
            client = self.fleet.client(self.fleet.pool_for(tenant, None))
            connection = TenantConnection(client, self.quotas, tenant, self.clock)
            if session_id:  # the transport checked it: this tenant's, and open
                self.connections[session_id] = connection
        return connection

    async def ended(self, session_id: str, tenant: str | None = None) -> None:
        """The MCP session is over: close its fleet session (only the owner's request
        may end it: `tenant`, when given, must be the owner)."""
        connection = self.connections.get(session_id)
        if connection is not None and tenant in (None, connection.tenant.name):
            del self.connections[session_id]
            await connection.close()

    async def prune(self) -> None:
        """Forget the Connections of MCP sessions idle past the timeout (the transport
        has dropped them; the fleet session has ended on its own by then too)."""
        now = self.clock()
        for session_id, connection in list(self.connections.items()):
            if now - connection.last_used > IDLE_TIMEOUT_S:
                await self.ended(session_id)

    async def run(self) -> None:
        async with self.manager.run():
            self.running.set()
            try:
                while True:
                    await asyncio.sleep(PRUNE_EVERY_S)
                    await self.prune()
            finally:
                for session_id in list(self.connections):
                    await self.ended(session_id)
