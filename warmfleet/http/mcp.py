"""MCP over streamable HTTP at `/mcp`: the tools of `warmfleet mcp`
(dispatcher/integrations/mcp_server.py) behind the service's API keys.

Each MCP session (the `Mcp-Session-Id` the transport hands out at `initialize`) gets
its own Connection, hence its own fleet session on the tenant's default pool, opened at
its first run_python and counted against the tenant's max_sandboxes. The MCP package's
session manager also binds an MCP session to the tenant that opened it (our tenant is
its "user"): another tenant's session id answers 404 as an unknown one does. A session
ends with the client's DELETE, or after 10 minutes without a call.

This module imports nothing of the `mcp` package: warmfleet/http/mcp_service.py is
loaded, and its session manager started, at the first request to /mcp.
"""

from __future__ import annotations

import asyncio
import importlib
import time

from fastapi import APIRouter, Request

from warmfleet.http.auth import require_tenant
from warmfleet.http.errors import ApiError, error_response

PATH = "/mcp"
SESSION_HEADER = "mcp-session-id"
START_TIMEOUT_S = 15.0


class McpEndpoint:
    """The ASGI endpoint at /mcp: the key first (401/429 as JSON, like every route),
    then the MCP transport, with the tenant as the session's owner."""

    async def __call__(self, scope, receive, send) -> None:
        request = Request(scope, receive)
        try:
            tenant = await require_tenant(request)
        except ApiError as exc:
            return await error_response(exc.status, exc.message, exc.headers)(scope, receive, send)
        try:
            service = await _started(request.app)
        except ApiError as exc:
            return await error_response(exc.status, exc.message)(scope, receive, send)
        if service is None:
            return await error_response(503, "MCP is starting; try again")(scope, receive, send)
        scope["user"] = service.owner(tenant)
        scope[service.TENANT_SCOPE_KEY] = tenant
        if scope["method"] == "DELETE" and (session_id := request.headers.get(SESSION_HEADER)):
            await service.ended(session_id, tenant.name)  # before the answer: the client may look at once
        await service.manager.handle_request(scope, receive, send)


async def _started(app):
    """The app's McpService once its session manager runs: the first request asks for it
    (the background task below loads and starts it); poll with a deadline."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while (service := getattr(app.state, "mcp", None)) is None or not service.running.is_set():
        if (wanted := getattr(app.state, "mcp_wanted", None)) is not None:
            wanted.set()
        if (missing := getattr(app.state, "mcp_missing", None)) is not None:
            raise ApiError(501, missing)
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.01)
    return service


router = APIRouter()
router.add_route(PATH, McpEndpoint(), methods=["GET", "POST", "DELETE"], include_in_schema=False)


async def background(app) -> None:
    """Runs for the app's lifetime (app.py starts every router module's `background`):
    waits for the first /mcp request, then loads and runs the MCP service."""
    app.state.mcp_wanted = asyncio.Event()
    await app.state.mcp_wanted.wait()
    try:
        module = await asyncio.to_thread(importlib.import_module, "warmfleet.http.mcp_service")
    except ImportError as exc:  # installed without the http extra's `mcp`
        app.state.mcp_missing = f"MCP is not available on this service: {exc} (pip install 'warmfleet[http]')"
        return
    app.state.mcp = service = module.McpService(app.state.fleet, app.state.quotas)
    await service.run()
