"""MCP over streamable HTTP at /mcp: the `mcp` package's own client, with an API key,
running code on the real fleet; one fleet session per MCP session, tenants kept apart."""

from __future__ import annotations

import contextlib

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from support.http_service import serve


@pytest.fixture(scope="module")
def service(fleet):
    with serve(fleet.client_url) as s:
        s.add_tenant("agent")
        s.add_tenant("other")
        yield s


@contextlib.asynccontextmanager
async def mcp_session(service, tenant: str, auth: str = "bearer"):
    key = service.keys[tenant]
    headers = {"Authorization": f"Bearer {key}"} if auth == "bearer" else {"X-API-KEY": key}
    async with create_mcp_http_client(headers=headers) as http, \
            streamable_http_client(service.url + "/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


@pytest.mark.timeout(90)
async def test_an_mcp_client_runs_code_over_http_and_keeps_its_variables(service):
    async with mcp_session(service, "agent") as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == {"run_python", "reset_session"}
        assert set(tools["run_python"].input_schema["properties"]) == {"code", "timeout", "memory_mb"}

        first = await session.call_tool("run_python", {"code": "x = 6 * 7\nprint(x)"})
        assert not first.is_error
        assert (first.structured_content["status"], first.structured_content["stdout"]) == ("ok", "42\n")
        again = await session.call_tool("run_python", {"code": "print(x + 1)"})
        assert again.structured_content["stdout"] == "43\n"

        # Another MCP session (same tenant) has its own interpreter.
        async with mcp_session(service, "agent", auth="x-api-key") as other:
            elsewhere = await other.call_tool("run_python", {"code": "print(x)"})
            assert elsewhere.structured_content["status"] == "error"
            assert "NameError" in elsewhere.structured_content["stderr"]

        await session.call_tool("reset_session", {})
        after = await session.call_tool("run_python", {"code": "print('x' in globals())"})
        assert after.structured_content["stdout"] == "False\n"


@pytest.mark.timeout(60)
async def test_an_mcp_session_ends_with_its_client_and_frees_the_fleet_session(service, fleet):
    from warmfleet.contract import keys
    from warmfleet.plumbing import redis_connect

    async with mcp_session(service, "agent") as session:
        await session.call_tool("run_python", {"code": "print(1)"})
        redis = redis_connect.connect(fleet.client_url, decode_responses=True)
        try:
            assert redis.zcard(keys.tenant_sandboxes("agent")) == 1  # counted while open
        finally:
            redis.close()
    # The client's DELETE on leaving closed the fleet session and released the quota.
    redis = redis_connect.connect(fleet.client_url, decode_responses=True)
    try:
        assert redis.zcard(keys.tenant_sandboxes("agent")) == 0
    finally:
        redis.close()


@pytest.mark.timeout(60)
async def test_without_a_key_or_with_another_tenants_session_id(service):
    plain = httpx.post(service.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=30)
    assert plain.status_code == 401 and plain.json()["code"] == 401

    async with mcp_session(service, "agent") as session:
        await session.call_tool("run_python", {"code": "secret = 1"})
        # The transport's session id, as a client on the wire sends it.
        init = httpx.post(service.url + "/mcp", headers={
            "X-API-KEY": service.keys["agent"], "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
            timeout=30)
        session_id = init.headers["mcp-session-id"]
        probe = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        common = {"Accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
        theirs = httpx.post(service.url + "/mcp", json=probe, timeout=30, headers={
            **common, "X-API-KEY": service.keys["other"], "mcp-session-id": session_id})
        unknown = httpx.post(service.url + "/mcp", json=probe, timeout=30, headers={
            **common, "X-API-KEY": service.keys["other"], "mcp-session-id": "0" * 32})
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json() == unknown.json()
        # Nor can another tenant end it.
        assert httpx.delete(service.url + "/mcp", timeout=30, headers={
            **common, "X-API-KEY": service.keys["other"], "mcp-session-id": session_id}).status_code == 404
        still = await session.call_tool("run_python", {"code": "print(secret)"})
        assert still.structured_content["stdout"] == "1\n"
        assert httpx.delete(service.url + "/mcp", timeout=30, headers={
            **common, "X-API-KEY": service.keys["agent"], "mcp-session-id": session_id}).status_code < 300
