"""Who is asking: the FastAPI dependency every route but /healthz takes.

    from warmfleet.http.auth import require_tenant
    @router.get("/thing")
    async def thing(tenant: Tenant = Depends(require_tenant)): ...

The key comes from `X-API-KEY`, `Authorization: Bearer KEY`, or HTTP Basic with the key
as the password (sandbox-fusion passes it in its URL, `http://any:KEY@host`). A missing
or unknown key: 401. Each request also counts against the tenant's rate (429).
"""

from __future__ import annotations

import base64
import binascii

from fastapi import Request

from warmfleet.http.errors import ApiError
from warmfleet.http.tenants import Tenant

MAX_KEY_LEN = 256


def key_from(request: Request) -> str | None:
    headers = request.headers
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, sep, password = decoded.partition(":")
        return password if sep and password else None
    return None


async def tenant_for_key(request: Request, key: str | None) -> Tenant:
    """The tenant a key opens, or 401. Also the re-check a long stream makes."""
    if not key or len(key) > MAX_KEY_LEN:
        raise ApiError(401, "missing API key: send X-API-KEY, Authorization: Bearer, or HTTP Basic with the key "
                            "as password")
    tenant = await request.app.state.tenants.lookup(key)
    if tenant is None:
        raise ApiError(401, "invalid API key")
    return tenant


async def require_tenant(request: Request) -> Tenant:
    tenant = await tenant_for_key(request, key_from(request))
    request.state.tenant = tenant.name  # for the metrics' tenant label
    await request.app.state.quotas.count_request(tenant)
    return tenant
