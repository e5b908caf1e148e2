"""What answers inside an E2B sandbox (the data plane, reached at E2B_SANDBOX_URL, the
sandbox named by `E2b-Sandbox-Id`): the code-interpreter server's /execute and /contexts,
and envd's /health. Files are in files.py, envd's Connect-RPC services in envd_rpc.py.

/execute runs the cell as a call of the sandbox's session, streamed: output lines as the
cell prints, then its results, error, execution count and end. A client that goes away
stops the cell (the session goes on).

Contexts map onto one session: each context is a named set of globals in the sandbox's
one session process (AsyncSession.run(context=...)), so contexts share the sandbox's
files, processes and budgets, as E2B's kernels share their sandbox. The default context
is the session's own globals; a bash context runs each cell as a bash process in the
workspace (variables do not carry between cells, files do).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

import anyio
import redis.exceptions
from fastapi import APIRouter, Depends, Request, Response

from dispatcher.errors import SessionEnded
from dispatcher.request import Chunk
from warmfleet.contract import keys
from warmfleet.http.e2b import execute as ndjson
from warmfleet.http.e2b.access import not_found, sandbox_access, still_allowed
from warmfleet.http.e2b.models import CreateContext, ExecuteRequest
from warmfleet.http.e2b.sandboxes import SandboxRecord, sandboxes_of
from warmfleet.http.errors import ApiError
from warmfleet.http.fleet import fleet_of
from warmfleet.http.streaming import ClosingStreamingResponse

router = APIRouter(tags=["e2b-sandbox"])

LANGUAGES = ("python", "bash")
DEFAULT_CWD = "/home/user"
RUN_LEASE_MARGIN_S = 60.0


def check_language(language: str | None) -> str:
    language = (language or "python").lower()
    if language not in LANGUAGES:
        raise ApiError(400, f"language {language!r} is not available: this sandbox runs {' and '.join(LANGUAGES)}")
    return language


@router.get("/health", status_code=204)
async def health(request: Request) -> Response:
    """As envd: 204 while the sandbox runs; 502 "not found" once it is gone."""
    await sandbox_access(request)
    return Response(status_code=204)


async def _context(request: Request, record: SandboxRecord, context_id: str) -> dict:
    raw = await fleet_of(request).redis.hget(keys.http_sandbox_contexts(record.sandbox_id), context_id)
    if raw is None:
        raise ApiError(404, f"context {context_id!r} not found")
    return json.loads(raw)


@router.post("/execute")
async def execute(body: ExecuteRequest, request: Request) -> ClosingStreamingResponse:
    record, tenant = await sandbox_access(request)
    if body.context_id and body.language:
        raise ApiError(400, "give a context or a language, not both")
    context = ""
    language = check_language(body.language)
    if body.context_id:
        ctx = await _context(request, record, body.context_id)
        context, language = ctx["id"], ctx["language"]
    if not body.code.strip():
        raise ApiError(400, "code is empty")
    fleet = fleet_of(request)
    client = fleet.client(record.pool)
    limits = await client.limits()
    run_id = uuid.uuid4().hex
    quotas = request.app.state.quotas
    await quotas.reserve_run(tenant, run_id, limits.max_timeout + RUN_LEASE_MARGIN_S)
    code = body.code
    env = body.env_vars or {}  # for this cell only (E2B's semantics): the call's own environment
    session = client.session(id=record.sandbox_id)
    counter = keys.http_sandbox_contexts(record.sandbox_id)
    settings = request.app.state.settings

    async def lines():
        stream = None
        pending: asyncio.Future | None = None
        # E2B's execution count, kept per context: counted while the cell runs, not after it
        count = asyncio.ensure_future(fleet.redis.hincrby(counter, f"count:{context}", 1))
        try:
            stream = session.stream(code, language=language, context=context or None, env=env or None,
                                    timeout=limits.max_timeout)
            checked = time.monotonic()
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(stream.__anext__())
                done, _ = await asyncio.wait({pending}, timeout=settings.http_keepalive_s)
                if not done:
                    yield ndjson.KEEPALIVE
                    if time.monotonic() - checked >= settings.http_key_recheck_s:
                        checked = time.monotonic()
                        if not await still_allowed(request, record):
                            yield ndjson.line({"type": "error", "name": "Unauthorized",
                                               "value": "the API key of this sandbox was revoked", "traceback": ""})
                            return
                    continue
                try:
                    item = pending.result()
                except StopAsyncIteration:
                    return
                finally:
                    pending = None
                if isinstance(item, Chunk):
                    if item.stream in ("stdout", "stderr"):
                        yield ndjson.output_line(item.stream, item.data)
                    continue
                tail = ndjson.result_lines(item)
                err = ndjson.error_line(item, language)
                if err is not None:
                    tail.append(err)
                # E2B counts per context, and not the service's own calls: our counter, not the session's
                tail.append(ndjson.count_line(int(await count)))
                tail.append(ndjson.END)
                yield b"".join(tail)  # one write: the cell's end is one packet, not five
                return
        except SessionEnded as exc:
            await sandboxes_of(request.app).forget(record)
            yield ndjson.line({"type": "error", "name": "SandboxEnded", "value": str(exc), "traceback": ""})
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            yield ndjson.line({"type": "error", "name": "ServiceUnavailable",
                               "value": f"the fleet's Redis is unreachable: {exc}", "traceback": ""})
        finally:
            with anyio.CancelScope(shield=True):  # the client may be gone: clean up all the same
                if not count.done():
                    count.cancel()
                with contextlib.suppress(BaseException):
                    await count
                if pending is not None:
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
                if stream is not None:
                    with contextlib.suppress(Exception):
                        await stream.aclose()  # unfinished: stops the cell
                with contextlib.suppress(Exception):
                    await quotas.release_run(tenant, run_id)

    return ClosingStreamingResponse(lines(), media_type="application/x-ndjson")


# -- contexts -------------------------------------------------------------------------
@router.post("/contexts")
async def create_context(body: CreateContext, request: Request) -> dict:
    record, _tenant = await sandbox_access(request)
    language = check_language(body.language)
    context = {"id": uuid.uuid4().hex[:24], "language": language, "cwd": body.cwd or DEFAULT_CWD}
    redis = fleet_of(request).redis
    key = keys.http_sandbox_contexts(record.sandbox_id)
    if await redis.hlen(key) >= 64:
        raise ApiError(429, "this sandbox has 32 contexts already (the most it may have)")
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(key, context["id"], json.dumps(context))
        pipe.expire(key, max(1, int(record.end_at - time.time()) + 3600))
        await pipe.execute()
    return context


@router.get("/contexts")
async def list_contexts(request: Request) -> list[dict]:
    record, _tenant = await sandbox_access(request)
    raw = await fleet_of(request).redis.hgetall(keys.http_sandbox_contexts(record.sandbox_id))
    return [json.loads(v) for k, v in raw.items() if not _text(k).startswith("count:")]


@router.delete("/contexts/{context_id}", status_code=204)
async def remove_context(context_id: str, request: Request) -> Response:
    record, _tenant = await sandbox_access(request)
    ctx = await _context(request, record, context_id)
    await _clear(request, record, ctx)
    await fleet_of(request).redis.hdel(keys.http_sandbox_contexts(record.sandbox_id), context_id,
                                       f"count:{context_id}")
    return Response(status_code=204)


@router.post("/contexts/{context_id}/restart", status_code=204)
async def restart_context(context_id: str, request: Request) -> Response:
    record, _tenant = await sandbox_access(request)
    ctx = await _context(request, record, context_id)
    await _clear(request, record, ctx)
    await fleet_of(request).redis.hdel(keys.http_sandbox_contexts(record.sandbox_id), f"count:{context_id}")
    return Response(status_code=204)


# Forget a context's globals (a restart, or its removal): the dict is emptied in place,
# and exec puts __builtins__ back at its next cell.
CLEAR_CODE = "globals().clear()\n__name__ = '__main__'"


async def _clear(request: Request, record: SandboxRecord, ctx: dict) -> None:
    if ctx["language"] != "python":
        return  # a bash context keeps nothing between cells
    session = fleet_of(request).client(record.pool).session(id=record.sandbox_id)
    try:
        await session.run(CLEAR_CODE, context=ctx["id"])
    except SessionEnded:
        await sandboxes_of(request.app).forget(record)
        raise not_found(record.sandbox_id) from None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


# The rest of the data plane: envd's files and its (unserved) Connect-RPC services.
from warmfleet.http.e2b import envd_rpc, files  # noqa: E402 - routers joined to this one

router.include_router(files.router)
router.include_router(envd_rpc.router)
