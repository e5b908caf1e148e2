"""ASGI middleware of the service: body limits and timeouts, and Prometheus metrics."""

from __future__ import annotations

import asyncio
import time

from fastapi import HTTPException
from prometheus_client import CollectorRegistry, Counter, Histogram

from warmfleet.http.errors import error_response


class BodyLimit:
    """Refuse a body over its limit (413 naming the limit) and one that has not fully
    arrived `timeout_s` after the request started (408): checked on Content-Length first,
    then on the bytes as they arrive (a chunked body has no length). Paths starting with
    one of `upload_prefixes` have the larger upload limit."""

    def __init__(self, app, *, max_bytes: int, max_upload_bytes: int, timeout_s: float,
                 upload_paths: tuple[str, ...] = ("/files",)) -> None:
        self.app, self.max_bytes, self.max_upload_bytes, self.timeout_s = app, max_bytes, max_upload_bytes, timeout_s
        self.upload_paths = upload_paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.max_upload_bytes if scope["path"] in self.upload_paths else self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:  # and close: the body it announced is not read
                    return await error_response(413, _too_large(limit), CLOSE)(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        state = {"received": 0, "done": False}

        async def limited_receive():
            if state["done"]:
                return await receive()  # after the body: disconnect notices, no timeout
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise HTTPException(408, f"request body not received within {self.timeout_s:g} s", CLOSE) from None
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    raise HTTPException(413, _too_large(limit), CLOSE)
                state["done"] = not message.get("more_body", False)
            else:
                state["done"] = True
            return message

        await self.app(scope, limited_receive, send)


CLOSE = {"Connection": "close"}  # the rest of that body is never read: the connection cannot carry another request


def _too_large(limit: int) -> str:
    return f"request body too large: the limit is {limit} bytes"


class Metrics:
    """Requests counted by route (its template, not the raw path: ids stay out of the
    labels), tenant and status, and their durations by route."""

    def __init__(self, app, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter("warmfleet_http_requests", "HTTP requests answered",
                                ["route", "tenant", "status"], registry=registry)
        self.seconds = Histogram("warmfleet_http_request_seconds", "HTTP request duration (to the end of the body)",
                                 ["route"], registry=registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_status(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            tenant = (scope.get("state") or {}).get("tenant", "")
            self.requests.labels(template, tenant, str(status["code"])).inc()
            self.seconds.labels(template).observe(time.perf_counter() - started)
