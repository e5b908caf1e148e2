"""envd's process service, `Start` only (Connect-RPC server streaming, JSON codec): what
`commands.run(cmd, envs=, cwd=, on_stdout=, on_stderr=, timeout=)` calls. The command
runs as a bash cell of the sandbox's session (its workspace, its environment), streamed
as it prints; the stream is Connect's: enveloped messages (a flags byte, a 4-byte length,
JSON), a `start` event, `data` events (base64 bytes), an `end` event with the exit code,
then the end-of-stream envelope. A client that leaves stops the command. The rest of the
service (background handles' `kill`, `send_stdin`, `connect`, `list`, pty) is not served.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shlex
import struct

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse

from dispatcher.errors import SessionEnded
from dispatcher.request import Chunk
from warmfleet.http.e2b.envd_fs import connect_error
from warmfleet.http.e2b.files import HOME, workspace_path
from warmfleet.http.e2b.models import check_env
from warmfleet.http.e2b.sandboxes import SandboxRecord
from warmfleet.http.errors import ApiError
from warmfleet.http.fleet import fleet_of
from warmfleet.http.streaming import ClosingStreamingResponse

CONTENT_TYPE = "application/connect+json"
END_STREAM = 0x02
MAX_REQUEST = 1 << 20


def envelope(message: dict, flags: int = 0) -> bytes:
    data = json.dumps(message, separators=(",", ":")).encode()
    return struct.pack(">BI", flags, len(data)) + data


def event(**payload) -> bytes:
    return envelope({"event": payload})


def _request(raw: bytes) -> dict:
    if len(raw) < 5:
        raise ValueError("no enveloped message")
    flags, size = struct.unpack(">BI", raw[:5])
    if flags & 0x01:
        raise ValueError("compressed messages are not accepted")
    if size > MAX_REQUEST or len(raw) < 5 + size:
        raise ValueError("truncated or oversized message")
    body = json.loads(raw[5:5 + size])
    if not isinstance(body, dict):
        raise ValueError("the message is not a JSON object")
    return body


def bash_of(process: dict, workspace: str) -> str:
    """The command line the SDK sends (`/bin/bash -l -c CMD`, or any cmd and args) as a
    bash cell, in its cwd under /home/user, with its envs."""
    cmd, args = process.get("cmd") or "", process.get("args") or []
    if not isinstance(cmd, str) or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ValueError("cmd and args must be strings")
    if cmd in ("/bin/bash", "bash", "/bin/sh", "sh") and len(args) >= 2 and args[-2] == "-c":
        line = args[-1]
    else:
        line = shlex.join([cmd, *args])
    envs = check_env(process.get("envs") or {})
    prefix = "".join(f"export {k}={shlex.quote(str(v))}\n" for k, v in envs.items() if k.isidentifier())
    cwd = process.get("cwd")
    if cwd and cwd.rstrip("/") != HOME:
        try:
            prefix += f"cd {shlex.quote(workspace + '/' + workspace_path(cwd))} || exit 1\n"
        except ApiError as exc:
            raise ValueError(exc.message) from None
    return prefix + line


async def start(request: Request, record: SandboxRecord) -> ClosingStreamingResponse | JSONResponse:
    if not request.headers.get("content-type", "").startswith(CONTENT_TYPE):
        return connect_error("invalid_argument", f"Start is a streaming call: send {CONTENT_TYPE}")
    try:
        body = _request(await request.body())
        code = bash_of(body.get("process") or {}, record.workspace)
    except (ValueError, struct.error) as exc:
        return connect_error("invalid_argument", str(exc))
    client = fleet_of(request).client(record.pool)
    limits = await client.limits()
    try:
        timeout = min(float(request.headers.get("connect-timeout-ms", "0")) / 1000 or limits.max_timeout,
                      limits.max_timeout)
    except ValueError:
        timeout = limits.max_timeout
    session = client.session(id=record.sandbox_id)
    keepalive = request.app.state.settings.http_keepalive_s

    async def events():
        stream = session.stream(code, language="bash", timeout=timeout)
        pending: asyncio.Future | None = None
        try:
            yield event(start={"pid": 1})
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(stream.__anext__())
                done, _ = await asyncio.wait({pending}, timeout=keepalive)
                if not done:
                    yield event(keepalive={})
                    continue
                try:
                    item = pending.result()
                except StopAsyncIteration:
                    break
                finally:
                    pending = None
                if isinstance(item, Chunk):
                    if item.stream in ("stdout", "stderr"):
                        yield event(data={item.stream: base64.b64encode(item.data.encode()).decode()})
                    continue
                end = {"exitCode": 0 if item.ok else (item.exit_code if item.exit_code is not None else -1),
                       "exited": True, "status": item.status.value}
                if not item.ok and item.status.value != "error":
                    end["error"] = item.error or item.status.value
                yield event(end=end) + envelope({}, END_STREAM)
                return
        except SessionEnded as exc:
            yield envelope({"error": {"code": "unavailable", "message": f"The sandbox was not found: {exc}"}}, END_STREAM)
        finally:
            with anyio.CancelScope(shield=True):
                if pending is not None:
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
                with contextlib.suppress(Exception):
                    await stream.aclose()  # unfinished: stops the command

    return ClosingStreamingResponse(events(), media_type=CONTENT_TYPE)
