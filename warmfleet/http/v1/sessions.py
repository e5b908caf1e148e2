"""`POST /v1/sessions`, `POST /v1/sessions/{id}/run`, `DELETE /v1/sessions/{id}`: a
warmfleet session (one interpreter that keeps its globals and workspace across calls)
owned by the tenant that opened it.

Which tenant owns a session is a record in Redis (keys.http_session), so any replica
answers for it; it lives as long as the session may. Another tenant's session id, an
id that never existed and one whose record has expired all answer the same 404."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from dispatcher import InvalidJob, SessionEnded, WaitTimeout
from warmfleet.contract import keys
from warmfleet.http.auth import require_tenant
from warmfleet.http.errors import ApiError
from warmfleet.http.fleet import fleet_of
from warmfleet.http.openapi import error_responses
from warmfleet.http.tenants import Tenant
from warmfleet.http.v1.models import CallRequest, SessionInfo, SessionRequest
from warmfleet.contract.schema import Result

router = APIRouter(prefix="/v1/sessions", tags=["warmfleet"])
RECORD_SLACK_S = 60.0  # the record outlives the session's longest possible life by this much
LEASE_SLACK_S = 5.0

_ERRORS = error_responses(
    e401="missing or unknown API key",
    e404="no such session for this key (unknown, another tenant's, or long gone); for open: a pool it may not use",
    e422="the body is invalid; `message` says why",
    e429="over a quota (max_sandboxes, max_running, rate); `message` names it",
)


class SessionRecord(BaseModel):
    """What the service keeps of a session it opened (keys.http_session)."""

    tenant: str
    info: SessionInfo


async def _owned(request: Request, tenant: Tenant, session_id: str) -> SessionRecord:
    raw = await fleet_of(request).redis.get(keys.http_session(session_id)) if len(session_id) <= 64 else None
    record = None if raw is None else SessionRecord.model_validate_json(raw)
    if record is None or record.tenant != tenant.name:
        raise ApiError(404, f"no session {session_id!r}")
    return record


@router.post("", status_code=201, response_model=SessionInfo, summary="Open a session",
             responses={**_ERRORS, **error_responses(e503="no executor had room to open a session in time")})
async def open_session(body: SessionRequest, request: Request, tenant: Tenant = Depends(require_tenant)) -> SessionInfo:
    fleet = fleet_of(request)
    pool = fleet.pool_for(tenant, body.pool)
    client = fleet.client(pool)
    if body.max_lifetime > fleet.settings.http_max_timeout_s:
        raise ApiError(422, f"max_lifetime={body.max_lifetime:g} s exceeds this service's maximum of "
                            f"{fleet.settings.http_max_timeout_s} s")
    quotas, reservation = request.app.state.quotas, f"pending-{uuid.uuid4().hex}"
    now = time.time()
    await quotas.reserve_sandbox(tenant, reservation, now + body.max_lifetime)
    try:
        session = await client.session(idle_timeout=body.idle_timeout, max_lifetime=body.max_lifetime,
                                       open_timeout=fleet.settings.http_open_timeout_s)
    except WaitTimeout:
        await quotas.release_sandbox(tenant.name, reservation)
        raise ApiError(503, "no executor had room to open a session; try again later") from None
    except (SessionEnded, ValueError) as exc:
        await quotas.release_sandbox(tenant.name, reservation)
        raise ApiError(503, f"the fleet could not open a session: {exc}") from None
    info = SessionInfo(id=session.id, pool=pool, idle_timeout=body.idle_timeout, max_lifetime=body.max_lifetime,
                       created_at=now)
    async with fleet.redis.pipeline(transaction=True) as pipe:
        # The quota counts the session under its own id from now on.
        pipe.set(keys.http_session(session.id), SessionRecord(tenant=tenant.name, info=info).model_dump_json(),
                 ex=int(body.max_lifetime + RECORD_SLACK_S))
        pipe.zadd(keys.tenant_sandboxes(tenant.name), {session.id: now + body.max_lifetime})
        pipe.zrem(keys.tenant_sandboxes(tenant.name), reservation)
        await pipe.execute()
    return info


@router.post("/{session_id}/run", response_model=Result, summary="Run code in a session",
             responses={**_ERRORS, **error_responses(e410="the session has ended (closed, idle, lifetime, lost)")})
async def run_in_session(session_id: str, body: CallRequest, request: Request,
                         tenant: Tenant = Depends(require_tenant)) -> Result:
    record = await _owned(request, tenant, session_id)
    fleet = fleet_of(request)
    client = fleet.client(record.info.pool)
    limits = await client.limits()
    quotas, run_id = request.app.state.quotas, uuid.uuid4().hex
    lease = min(body.timeout or limits.timeout, limits.max_timeout) + fleet.settings.http_open_timeout_s + LEASE_SLACK_S
    await quotas.reserve_run(tenant, run_id, lease)
    try:
        return await client.session(id=session_id).run(body.code, **body.options())
    except InvalidJob as exc:
        raise ApiError(422, str(exc)) from None
    except SessionEnded as exc:
        raise ApiError(410, str(exc)) from None
    finally:
        await quotas.release_run(tenant, run_id)


@router.delete("/{session_id}", status_code=204, response_class=Response, summary="Close a session",
               responses=_ERRORS)
async def close_session(session_id: str, request: Request, tenant: Tenant = Depends(require_tenant)) -> Response:
    fleet = fleet_of(request)
    record = await _owned(request, tenant, session_id)
    await fleet.client(record.info.pool).session(id=session_id).close(wait=0)
    async with fleet.redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.http_session(session_id))
        pipe.zrem(keys.tenant_sandboxes(tenant.name), session_id)
        await pipe.execute()
    return Response(status_code=204)
