"""`POST /v1/jobs`: one stateless job, answered with its Result as JSON, or streamed as
NDJSON lines (`stdout`/`stderr` as the job prints, then the `result`) when the body
says `"stream": true` or the request accepts `application/x-ndjson`.

A client that disconnects from a stream stops reading; the job runs on to its end
within its budgets (warmfleet has no cancel: a job is short and bounded)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from dispatcher import Chunk, InvalidJob, WaitTimeout
from warmfleet.http.auth import key_from, require_tenant, tenant_for_key
from warmfleet.http.errors import ApiError
from warmfleet.http.fleet import fleet_of
from warmfleet.http.openapi import error_responses
from warmfleet.http.tenants import Tenant
from warmfleet.http.v1.models import JobRequest, OutputLine, ndjson_schema
from warmfleet.contract.schema import Result

router = APIRouter(prefix="/v1", tags=["warmfleet"])
NDJSON = "application/x-ndjson"
LEASE_SLACK_S = 5.0

_ERRORS = error_responses(
    e401="missing or unknown API key",
    e404="a pool this key may not use",
    e422="the job is invalid (budgets, files, code, body); `message` says why",
    e429="over a quota (rate, max_running); `message` names it",
    e504="no result in time: the fleet is busy (the job may still run)",
)


@router.post(
    "/jobs", response_model=Result, summary="Run one job",
    responses={**_ERRORS, 200: {"description": "the job's Result; with streaming, NDJSON lines (OutputLine)",
                                "content": {NDJSON: {"schema": ndjson_schema()}}}},
)
async def run_job(body: JobRequest, request: Request, tenant: Tenant = Depends(require_tenant)):
    fleet = fleet_of(request)
    client = fleet.client(fleet.pool_for(tenant, body.pool))
    limits = await client.limits()
    options = {"language": body.language, **body.options()}
    wait_s = min(body.timeout or limits.timeout, limits.max_timeout) + fleet.settings.http_open_timeout_s
    quotas, run_id = request.app.state.quotas, uuid.uuid4().hex
    await quotas.reserve_run(tenant, run_id, wait_s + LEASE_SLACK_S)
    if body.stream or NDJSON in request.headers.get("accept", ""):
        try:
            client.core.build(body.code, options)  # a bad job is a 422 before the stream starts
        except InvalidJob as exc:
            await quotas.release_run(tenant, run_id)
            raise ApiError(422, str(exc)) from None
        lines = _stream(client, body.code, options, fleet.settings.http_keepalive_s, fleet.settings.http_key_recheck_s,
                        _key_check(request, tenant))
        return StreamingResponse(_released(lines, quotas, tenant, run_id), media_type=NDJSON)
    try:
        job_id = await client.submit(body.code, idempotency_key=body.idempotency_key, **options)
        return await client.wait(job_id, timeout=wait_s)
    except InvalidJob as exc:
        raise ApiError(422, str(exc)) from None
    except WaitTimeout:
        raise ApiError(504, f"no result within {wait_s:g} s: the fleet is busy (job {job_id} may still run)") from None
    finally:
        await quotas.release_run(tenant, run_id)


async def _stream(client, code: str, options: dict, keepalive_s: float, recheck_s: float,
                  allowed: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
    """NDJSON lines of a streamed job, with a `keepalive` whenever nothing came for
    keepalive_s (proxies and clients' read timeouts then see the stream alive); every
    recheck_s the key is looked up again, and a revoked one ends the stream (401 line)."""
    loop = asyncio.get_running_loop()
    chunks = client.stream(code, **options)
    step: asyncio.Future | None = None
    last_line = last_check = loop.time()
    try:
        while True:
            step = step or asyncio.ensure_future(anext(chunks))
            done, _ = await asyncio.wait({step}, timeout=min(keepalive_s, recheck_s))
            now = loop.time()
            if now - last_check >= recheck_s:
                last_check = now
                if not await allowed():
                    yield _line(OutputLine(type="error", code=401, message="the API key was revoked"))
                    return
            if not done:
                if now - last_line >= keepalive_s:
                    last_line = now
                    yield _line(OutputLine(type="keepalive"))
                continue
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            except InvalidJob as exc:
                yield _line(OutputLine(type="error", code=422, message=str(exc)))
                return
            except Exception as exc:  # noqa: BLE001 - the stream ends with a line that says why
                yield _line(OutputLine(type="error", code=503, message=f"the stream broke: {type(exc).__name__}: {exc}"))
                return
            step, last_line = None, now
            if isinstance(item, Chunk):
                yield _line(OutputLine(type=item.stream, data=item.data or None))  # type: ignore[arg-type]
            else:
                yield _line(OutputLine(type="result", result=item))
                return
    finally:
        if step is not None and not step.done():
            step.cancel()
            await asyncio.wait({step})
        with contextlib.suppress(Exception):
            await chunks.aclose()


def _key_check(request: Request, tenant: Tenant) -> Callable[[], Awaitable[bool]]:
    """Whether the request's key still opens the same tenant (a stream asks as it runs)."""
    key = key_from(request)

    async def allowed() -> bool:
        try:
            return (await tenant_for_key(request, key)).name == tenant.name
        except ApiError:
            return False

    return allowed


async def _released(lines: AsyncIterator[bytes], quotas, tenant: Tenant, run_id: str):
    try:
        async for line in lines:
            yield line
    finally:
        await quotas.release_run(tenant, run_id)


def _line(line: OutputLine) -> bytes:
    return (json.dumps(line.model_dump(mode="json", exclude_none=True), separators=(",", ":")) + "\n").encode()
