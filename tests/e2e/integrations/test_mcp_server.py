"""`warmfleet mcp` as an agent sees it: the real MCP client from the `mcp` package,
talking to the server over stdio, running code on the real fleet."""

from __future__ import annotations

import sys

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


def _params(fleet) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "warmfleet.cli.main", "mcp", "--redis-url", fleet.client_url, "--max-timeout", "2"],
    )


@pytest.mark.timeout(60)
async def test_run_python_over_stdio(fleet):
    async with stdio_client(_params(fleet)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert "run_python" in tools
        assert "code" in tools["run_python"].input_schema["properties"]

        ok = await session.call_tool("run_python", {"code": "import os; print(6 * 7, os.getcwd())"})
        assert not ok.is_error
        out = ok.structured_content
        assert (out["status"], out["exit_code"]) == ("ok", 0)
        assert out["stdout"].startswith("42 ")
        assert "42" in ok.content[0].text  # unstructured clients get it as text too

        crash = await session.call_tool("run_python", {"code": "1/0"})
        assert crash.structured_content["status"] == "error"
        assert "ZeroDivisionError" in crash.structured_content["stderr"]

        # The server caps a call's wall clock (--max-timeout 2), whatever the agent asks.
        slow = await session.call_tool("run_python", {"code": "import time; time.sleep(30)", "timeout": 300})
        assert slow.structured_content["status"] == "timeout"
        assert slow.structured_content["duration_s"] < 5

        empty = await session.call_tool("run_python", {"code": "   "})
        assert empty.structured_content["status"] == "rejected"
        assert "empty" in empty.structured_content["error"]


@pytest.mark.timeout(90)
async def test_one_session_per_connection_with_a_reset_tool(fleet):
    """Variables persist across two tool calls of one connection, not into another
    connection, and reset_session forgets them."""
    async with stdio_client(_params(fleet)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        assert "reset_session" in {t.name for t in (await session.list_tools()).tools}
        first = await session.call_tool("run_python", {"code": "x = 6 * 7\nopen('kept.txt', 'w').write('k')"})
        assert first.structured_content["status"] == "ok", first.structured_content
        second = await session.call_tool("run_python", {"code": "print(x, open('kept.txt').read())"})
        assert second.structured_content["stdout"] == "42 k\n", second.structured_content

        async with stdio_client(_params(fleet)) as (read2, write2), ClientSession(read2, write2) as other:
            await other.initialize()
            elsewhere = await other.call_tool("run_python", {"code": "print(x)"})
            assert elsewhere.structured_content["status"] == "error"
            assert "NameError" in elsewhere.structured_content["stderr"]

        reset = await session.call_tool("reset_session", {})
        assert not reset.is_error
        after = await session.call_tool("run_python", {"code": "import os; print('x' in globals(), os.listdir('.'))"})
        assert after.structured_content["stdout"] == "False []\n", after.structured_content
