"""`warmfleet mcp`: an MCP server over stdio, built on the official `mcp` package,
exposing one tool, ``run_python``, backed by the fleet.

Any MCP-speaking agent can then run code in the fleet's sandboxes, e.g. in a client's
config: ``{"command": "warmfleet", "args": ["mcp", "--redis-url", "redis://..."]}``.
Needs ``pip install 'warmfleet[mcp]'``. stdout is the protocol channel: every log line
goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated

from dispatcher import AsyncClient, InvalidJob, SessionEnded, WaitTimeout
from dispatcher.integrations.common import (
    RESET_TOOL_DESCRIPTION,
    RESET_TOOL_NAME,
    SESSION_TOOL_DESCRIPTION,
    TOOL_DESCRIPTION,
    TOOL_NAME,
    RunOutput,
)
from warmfleet.contract.schema import DEFAULT_LIMITS

try:  # mcp >= 2
    from mcp.server.mcpserver import MCPServer as _Server
    from mcp_types import CallToolResult, ImageContent, TextContent
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as _Server
    from mcp.types import CallToolResult, ImageContent, TextContent


def build_server(
    redis_url: str | None = None, pool: str | None = None, *, max_timeout: float = 60.0, stateless: bool = False,
    idle_timeout: float = 600.0,
):
    """The MCP server object; `run()` it, or drive it in-process in tests.

    By default the connection gets one fleet session (opened at its first call): the
    agent's variables and files persist across run_python calls, as in a notebook, and
    reset_session starts over. `stateless`: every call is a fresh job."""
    clients: list[AsyncClient] = []
    sessions: list = []  # the connection's session, once opened

    @contextlib.asynccontextmanager
    async def lifespan(_server) -> AsyncIterator[None]:
        # One client for the whole connection: one pub/sub connection, many jobs in flight.
        client = AsyncClient(redis_url, pool=pool)
        clients.append(client)
        try:
            yield None
        finally:
            for s in sessions:
                with contextlib.suppress(Exception):
                    await s.close(wait=0)
            await client.close()

    description = TOOL_DESCRIPTION if stateless else SESSION_TOOL_DESCRIPTION
    server = _Server(name="warmfleet", instructions=description, lifespan=lifespan)

    async def _run(code: str, timeout: float, memory_mb: int):
        if stateless:
            return await clients[-1].run(code, timeout=timeout, cpu_time=timeout, memory_mb=memory_mb)
        if not sessions:
            sessions.append(await clients[-1].session(idle_timeout=idle_timeout))
        try:
            return await sessions[0].run(code, timeout=timeout, cpu_time=timeout, memory_mb=memory_mb)
        except SessionEnded:
            sessions.clear()  # the next call opens a fresh one; this one says so
            raise

    async def run_python(
        code: str, timeout: float = DEFAULT_LIMITS.timeout, memory_mb: int = DEFAULT_LIMITS.memory_mb
    ) -> Annotated[CallToolResult, RunOutput]:
        """Run a Python 3 snippet in an isolated sandbox; returns its status, exit code, stdout and stderr,
        and the PNG figures it drew as images."""
        timeout = min(float(timeout), max_timeout)
        try:
            result = await _run(code, timeout, memory_mb)
        except InvalidJob as exc:
            return _tool_result(_failure("rejected", str(exc)), [])
        except SessionEnded as exc:
            return _tool_result(_failure(
                "session_ended", f"{exc}. Its variables and files are gone; the next call starts a fresh session."
            ), [])
        except WaitTimeout:
            return _tool_result(_failure("failed", "no sandbox was free to open a session; try again later"), [])
        return _tool_result(RunOutput.from_result(result), _contents(result))

    async def reset_session() -> str:
        """Forget every variable and file: the next run_python call starts a fresh session."""
        while sessions:
            await sessions.pop().close()
        return "reset: the next run_python call starts with no variables and an empty working directory"

    server.add_tool(run_python, name=TOOL_NAME, description=description)
    if not stateless:
        server.add_tool(reset_session, name=RESET_TOOL_NAME, description=RESET_TOOL_DESCRIPTION)
    return server


def _failure(status: str, error: str) -> RunOutput:
    return RunOutput(status=status, exit_code=None, stdout="", stderr="", error=error, duration_s=0.0, job_id="")


IMAGE_TYPES = ("image/png", "image/jpeg")


def _contents(result) -> list:
    """Each output of the cell, in order, as a multimodal agent sees it: an image as an
    image, HTML (a DataFrame's table) as text, anything else as its text/plain; then the
    PNG files the job wrote under out/ itself (its figures are among the outputs)."""
    content: list = []
    for output in result.outputs:
        data = output["data"]
        image = next((m for m in IMAGE_TYPES if m in data), None)
        if image is not None:
            content.append(ImageContent(type="image", data=data[image], mime_type=image))
        elif "text/html" in data:
            content.append(TextContent(type="text", text=data["text/html"]))
        elif "text/plain" in data:
            content.append(TextContent(type="text", text=data["text/plain"]))
    shown = any(m in o["data"] for o in result.outputs for m in IMAGE_TYPES)
    for name in sorted(result.files):
        if name.endswith(".png") and not (shown and name.startswith("figure-")):
            content.append(ImageContent(type="image", data=result.files[name], mime_type="image/png"))
    return content


def _tool_result(out: RunOutput, contents: list) -> CallToolResult:
    """The output as structured data and JSON text, then the cell's outputs."""
    data = out.model_dump(mode="json")
    content: list = [TextContent(type="text", text=json.dumps(data, indent=2)), *contents]
    return CallToolResult(content=content, structured_content=data)


def main(args) -> int:
    """Entry point of `warmfleet mcp`."""
    from dispatcher.request import resolve_url
    from warmfleet.settings import ClientSettings, SettingsError, load

    try:
        settings = load(ClientSettings, strict=False)
        url = resolve_url(args.redis_url, settings)
    except (RuntimeError, SettingsError) as exc:
        import sys

        print(f"warmfleet mcp: {exc}", file=sys.stderr)
        return 2
    server = build_server(url, args.pool or settings.pool, max_timeout=args.max_timeout, stateless=getattr(args, "stateless", False))
    server.run()  # stdio until the client hangs up
    return 0
