"""The HTTP service for tests: the real app under a real uvicorn on a free loopback port,
in a thread of the test process, in front of a real fleet; and tenants with keys.

    with serve(fleet.client_url) as service:
        key = service.add_tenant("alice")
        httpx.post(service.url + "/v1/jobs", headers={"X-API-KEY": key}, json={"code": "print(1)"})
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

START_TIMEOUT_S = 30.0


@dataclass
class Service:
    url: str
    redis_url: str
    keys: dict[str, str] = field(default_factory=dict)  # tenant -> its key

    def add_tenant(self, name: str, pools: tuple[str, ...] = ("default",), **quotas) -> str:
        from warmfleet.http.tenants import Tenant, TenantStore
        from warmfleet.plumbing import redis_connect

        redis = redis_connect.connect(self.redis_url, decode_responses=True)
        try:
            key = TenantStore(redis).add(Tenant(name=name, pools=list(pools), **quotas))
        finally:
            redis.close()
        self.keys[name] = key
        return key

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("http://")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(redis_url: str, pools: tuple[str, ...] = ("default",), **settings) -> Iterator[Service]:
    """The app on 127.0.0.1:PORT until the block ends (uvicorn's own shutdown: the app's
    lifespan closes its clients)."""
    import uvicorn

    from warmfleet.http.app import create_app
    from warmfleet.http.settings import http_settings

    app = create_app(http_settings(redis_url=redis_url, pools=list(pools), **settings))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                           loop="asyncio"))  # as warmfleet serve runs it (warmfleet/cli/http.py LOOP)
    thread = threading.Thread(target=server.run, name="http-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:  # poll with a deadline: uvicorn sets it once it listens
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the HTTP service did not start")
        time.sleep(0.02)
    try:
        yield Service(url=f"http://127.0.0.1:{port}", redis_url=redis_url)
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_S)
