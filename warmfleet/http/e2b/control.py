"""E2B's API (the control plane): sandboxes created, listed, described, given more time,
connected to and killed, for the tenant whose key (X-API-KEY) asks. A sandbox is a
warmfleet session (sandboxes.py); a template is a pool."""

from __future__ import annotations

import urllib.parse

from fastapi import APIRouter, Depends, Request, Response

from warmfleet.http.auth import require_tenant
from warmfleet.http.e2b.access import key_hash_of
from warmfleet.http.e2b.models import ENVD_VERSION, ConnectRequest, NewSandbox, TimeoutRequest, iso
from warmfleet.http.e2b.sandboxes import SandboxRecord, reaper, sandboxes_of
from warmfleet.http.errors import ApiError
from warmfleet.http.fleet import fleet_of
from warmfleet.http.tenants import Tenant

router = APIRouter(tags=["e2b"])

# E2B's stock template names: the tenant's default pool, so Sandbox.create() works as is.
STOCK_TEMPLATES = frozenset({"code-interpreter-v1", "code-interpreter", "code-interpreter-beta", "base"})
CLIENT_ID = "warmfleet"


async def background(app) -> None:
    await reaper(app)


def _pool_of(request: Request, tenant: Tenant, template_id: str) -> str:
    fleet = fleet_of(request)
    name = template_id.split(":", 1)[0] if template_id.split(":", 1)[0] in STOCK_TEMPLATES else template_id
    if name in STOCK_TEMPLATES:
        return fleet.pool_for(tenant, None)
    usable = fleet.tenant_pools(tenant)
    if name not in usable:
        raise ApiError(404, f"template {template_id!r} not found: this key may use the pools "
                            f"{', '.join(usable) or '(none)'} (or {', '.join(sorted(STOCK_TEMPLATES))} for "
                            f"{usable[0] if usable else 'its default'})")
    return name


def _created(record: SandboxRecord) -> dict:
    return {"templateID": record.template_id, "sandboxID": record.sandbox_id, "clientID": CLIENT_ID,
            "envdVersion": ENVD_VERSION, "envdAccessToken": record.access_token,
            "trafficAccessToken": record.access_token, "alias": record.template_id, "domain": None}


def _listed(record: SandboxRecord) -> dict:
    return {"templateID": record.template_id, "sandboxID": record.sandbox_id, "clientID": CLIENT_ID,
            "alias": record.template_id, "startedAt": iso(record.started_at), "endAt": iso(record.end_at),
            "cpuCount": 1, "memoryMB": 0, "diskSizeMB": 0, "state": "running", "envdVersion": ENVD_VERSION,
            "metadata": record.metadata}


@router.post("/sandboxes", status_code=201)
@router.post("/v2/sandboxes", status_code=201)
async def create_sandbox(body: NewSandbox, request: Request, tenant: Tenant = Depends(require_tenant)) -> dict:
    pool = _pool_of(request, tenant, body.template_id)
    record = await sandboxes_of(request.app).create(tenant, key_hash_of(request), pool, body.template_id,
                                                     body.timeout, body.env_vars or {}, body.metadata or {})
    return _created(record)


@router.get("/sandboxes/{sandbox_id}")
async def get_sandbox(sandbox_id: str, request: Request, tenant: Tenant = Depends(require_tenant)) -> dict:
    record = await sandboxes_of(request.app).require(tenant, sandbox_id)
    return {**_listed(record), "envdAccessToken": record.access_token, "domain": None}


@router.get("/sandboxes")
@router.get("/v2/sandboxes")
async def list_sandboxes(request: Request, metadata: str | None = None, state: str | None = None,
                         limit: int | None = None, tenant: Tenant = Depends(require_tenant)) -> list[dict]:
    wanted = _metadata_filter(metadata)
    if state is not None and "running" not in state.split(","):
        return []  # a warmfleet sandbox is never paused
    records = await sandboxes_of(request.app).list(tenant)
    out = [_listed(r) for r in sorted(records, key=lambda r: r.started_at)
           if all(r.metadata.get(k) == v for k, v in wanted.items())]
    return out[: limit] if limit and limit > 0 else out


def _metadata_filter(metadata: str | None) -> dict[str, str]:
    """E2B's filter: `k=v&k2=v2`, each key and value URL-quoted once more by the SDK."""
    if not metadata:
        return {}
    if len(metadata) > 4096:
        raise ApiError(400, "metadata filter too long (at most 4096 characters)")
    return {urllib.parse.unquote(k): urllib.parse.unquote(v) for k, v in urllib.parse.parse_qsl(metadata)}


@router.post("/sandboxes/{sandbox_id}/timeout", status_code=204)
async def set_timeout(sandbox_id: str, body: TimeoutRequest, request: Request,
                      tenant: Tenant = Depends(require_tenant)) -> Response:
    sandboxes = sandboxes_of(request.app)
    record = await sandboxes.require(tenant, sandbox_id)
    await sandboxes.set_end(record, sandboxes.clock() + sandboxes.lifetime(body.timeout))
    return Response(status_code=204)


@router.post("/sandboxes/{sandbox_id}/connect")
@router.post("/v2/sandboxes/{sandbox_id}/connect")
async def connect(sandbox_id: str, request: Request, body: ConnectRequest | None = None,
                  tenant: Tenant = Depends(require_tenant)) -> dict:
    """A running sandbox answers 200 (E2B answers 201 only for one it resumed); a timeout
    given only ever extends its life."""
    sandboxes = sandboxes_of(request.app)
    record = await sandboxes.require(tenant, sandbox_id)
    if body is not None and body.timeout:
        end_at = sandboxes.clock() + sandboxes.lifetime(body.timeout)
        if end_at > record.end_at:
            record = await sandboxes.set_end(record, end_at)
    return _created(record)


@router.delete("/sandboxes/{sandbox_id}", status_code=204)
async def kill_sandbox(sandbox_id: str, request: Request, tenant: Tenant = Depends(require_tenant)) -> Response:
    sandboxes = sandboxes_of(request.app)
    await sandboxes.kill(await sandboxes.require(tenant, sandbox_id))
    return Response(status_code=204)


@router.post("/sandboxes/{sandbox_id}/pause")
@router.post("/sandboxes/{sandbox_id}/snapshots")
@router.post("/sandboxes/{sandbox_id}/fork")
async def unsupported(sandbox_id: str, request: Request, tenant: Tenant = Depends(require_tenant)) -> Response:
    await sandboxes_of(request.app).require(tenant, sandbox_id)
    what = request.url.path.rsplit("/", 1)[-1]
    raise ApiError(501, f"{what} is not supported by warmfleet: a sandbox is a live session (see "
                        "docs/protocols/switching-from-e2b.md)")
