"""The ASGI app: `create_app(settings)`.

Every protocol is a router in its own module, listed in PROTOCOL_ROUTERS as
"module:attribute"; a module may also define `async def background(app)` tasks that run
for the app's lifetime (the E2B sandbox reaper). What routers get from the app:
- `Depends(require_tenant)` (warmfleet/http/auth.py): the caller's Tenant, or 401/429;
- `fleet_of(request)` (warmfleet/http/fleet.py): one warmfleet.AsyncClient per pool;
- `raise ApiError(status, message)` (warmfleet/http/errors.py): `{"code", "message"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from dispatcher.request import resolve_url
from warmfleet.plumbing import redis_connect
from warmfleet.http import errors
from warmfleet.http.fleet import Fleet
from warmfleet.http.middleware import BodyLimit, Metrics
from warmfleet.http.quotas import Quotas
from warmfleet.http.settings import HttpSettings
from warmfleet.settings import ClientSettings, load
from warmfleet.http.tenants import TenantStore

# Routers of the protocols served, "module:attribute". Add yours here.
PROTOCOL_ROUTERS: list[str] = [
    "warmfleet.http.e2b.control:router",
    "warmfleet.http.e2b.data:router",
    "warmfleet.http.sandboxfusion.routes:router",
    "warmfleet.http.v1.jobs:router",
    "warmfleet.http.v1.sessions:router",
    "warmfleet.http.mcp:router",
]


def _load(spec: str):
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    return module, getattr(module, attr)


def create_app(settings: HttpSettings | None = None, *, registry: CollectorRegistry | None = None) -> FastAPI:
    settings = settings or load(HttpSettings)
    loaded = [_load(spec) for spec in PROTOCOL_ROUTERS]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The fleet's Redis as every client finds it (the setting, or a local `warmfleet up`'s)
        url = resolve_url(settings.redis_url, load(ClientSettings, strict=False))
        redis = redis_connect.connect_async(url)
        app.state.settings = settings
        app.state.fleet = Fleet(settings.model_copy(update={"redis_url": url}), redis)
        app.state.tenants = TenantStore(redis)
        app.state.quotas = Quotas(redis)
        tasks = [asyncio.create_task(task(app)) for module, _ in loaded
                 if (task := getattr(module, "background", None)) is not None]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await app.state.fleet.close()
            await redis.aclose()

    app = FastAPI(title="warmfleet", version=_version(), lifespan=lifespan)
    app.state.metrics_registry = registry = registry or CollectorRegistry()
    errors.install(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok"}

    for _module, router in loaded:
        app.include_router(router)
    # Added last = outermost: metrics see every answer, the limit runs before any route.
    app.add_middleware(BodyLimit, max_bytes=settings.http_max_body_bytes,
                       max_upload_bytes=settings.http_max_upload_bytes, timeout_s=settings.http_body_timeout_s)
    app.add_middleware(Metrics, registry=registry)
    return app


def _version() -> str:
    from warmfleet import __version__

    return __version__
