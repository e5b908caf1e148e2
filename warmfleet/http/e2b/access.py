"""Who may reach a sandbox's data plane (what envd and the code-interpreter server answer
inside an E2B sandbox): the request names the sandbox in `E2b-Sandbox-Id` and proves it
may reach it with the sandbox's access token (`X-Access-Token`, or E2B's
`E2B-Traffic-Access-Token`, which the SDK sends on /contexts) or with its tenant's API key.
A sandbox id alone reaches nothing.

A sandbox that is unknown, ended, another tenant's, or named with a token that does not
open it answers as E2B's proxy answers for a sandbox it does not know: 502 "...was not
found", which the SDK reports as a sandbox that was killed or timed out. The tenant's key
is looked up on every request, so a revoked key stops its sandboxes too.
"""

from __future__ import annotations

import secrets

from fastapi import Request

from warmfleet.contract import keys, lua
from warmfleet.http.auth import key_from
from warmfleet.http.e2b.sandboxes import NOT_FOUND_502, SandboxRecord, sandboxes_of
from warmfleet.http.errors import ApiError
from warmfleet.http.tenants import Tenant, key_hash

ACCESS = lua.script("http_sandbox_access")  # warmfleet/contract/lua/http_sandbox_access.lua
SANDBOX_HEADER = "e2b-sandbox-id"
TOKEN_HEADERS = ("x-access-token", "e2b-traffic-access-token")


def not_found(sandbox_id: str) -> ApiError:
    return ApiError(502, f"{NOT_FOUND_502}: sandbox {sandbox_id!r} was not found")


async def sandbox_access(request: Request) -> tuple[SandboxRecord, Tenant]:
    """The sandbox this data-plane request may reach and its tenant, or the error."""
    sandbox_id = request.headers.get(SANDBOX_HEADER, "")
    token = next((request.headers[h] for h in TOKEN_HEADERS if request.headers.get(h)), None)
    key = key_from(request)
    if not token and not key:
        raise ApiError(401, "missing credentials: send the sandbox's X-Access-Token (envdAccessToken) or an API key")
    if not sandbox_id:
        raise ApiError(400, "missing E2b-Sandbox-Id header: which sandbox?")
    sandboxes = sandboxes_of(request.app)
    if len(sandbox_id) > 128:
        raise not_found(sandbox_id[:128])
    script = getattr(request.app.state, "sandbox_access_script", None)
    if script is None:
        script = request.app.state.sandbox_access_script = request.app.state.fleet.redis.register_script(ACCESS)
    raw_record, raw_tenant = await script(keys=[keys.http_sandbox(sandbox_id), keys.api_keys()])
    record = sandboxes.parse(raw_record) if raw_record else None
    if record is None:
        raise not_found(sandbox_id)
    tenant = Tenant.model_validate_json(raw_tenant) if raw_tenant else None
    if tenant is None or tenant.name != record.tenant:
        raise ApiError(401, "the API key that created this sandbox was revoked")
    if token is not None:
        if not secrets.compare_digest(token.encode(), record.access_token.encode()):
            raise not_found(sandbox_id)
    else:
        caller = await request.app.state.tenants.lookup(key)
        if caller is None:
            raise ApiError(401, "invalid API key")
        if caller.name != record.tenant:
            raise not_found(sandbox_id)
    request.state.tenant = tenant.name
    await request.app.state.quotas.count_request(tenant)
    return record, tenant


async def still_allowed(request: Request, record: SandboxRecord) -> bool:
    """A long stream's re-check: the key that made the sandbox is still there."""
    return bool(await request.app.state.fleet.redis.hexists(keys.api_keys(), record.key_hash))


def key_hash_of(request: Request) -> str:
    key = key_from(request)
    return key_hash(key) if key else ""
