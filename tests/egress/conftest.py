"""An egress proxy in this process (its own asyncio loop in a thread), HTTP servers on
127.0.0.1 and ::1 standing in for destinations, and a hosts file naming them. Nothing
here sends a packet anywhere but loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

import pytest

from egress.server import EgressProxy
from egress.settings import EgressSettings
from executor.egress_relay import Relay
from support.egress_sites import start_site
from warmfleet import egress_identity as identity

SECRET = "test-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def sites():
    allowed, denied, v6 = start_site(b"allowed site\n"), start_site(b"denied site\n"), start_site(
        b"v6 site\n", socket.AF_INET6, "::1"
    )
    yield {"allowed": allowed.server_address[1], "denied": denied.server_address[1], "v6": v6.server_address[1]}
    for s in (allowed, denied, v6):
        s.shutdown()


class ProxyUnderTest:
    def __init__(self, tmp: str, allow: str, hosts: str, **settings) -> None:
        hosts_file = os.path.join(tmp, "hosts")
        with open(hosts_file, "w") as f:
            f.write(hosts)
        self.settings = EgressSettings(
            pool="t", allow=allow, secret=SECRET, listen=f"unix:{tmp}/egress.sock",
            control=f"unix:{tmp}/control.sock", hosts_file=hosts_file, **settings,
        )
        self.socket = f"{tmp}/egress.sock"
        self.loop = asyncio.new_event_loop()
        self.proxy = EgressProxy(self.settings)
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self.loop).result(10)

    def relay(self, job_id: str) -> Relay:
        relay = Relay(self.socket, 0)
        relay.start(job_id, identity.job_token(SECRET, "t", job_id))
        return relay

    def usage(self, job_id: str, token: str | None = None) -> str:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(f"{os.path.dirname(self.socket)}/control.sock")
        s.sendall(f"USAGE {job_id} {token or identity.control_token(SECRET, 't', job_id)}\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        return data.decode()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def make_proxy(tmp_path, sites):
    made = []

    def make(allow: str | None = None, **settings) -> ProxyUnderTest:
        a, d, v6 = sites["allowed"], sites["denied"], sites["v6"]
        hosts = (
            "127.0.0.1 allowed.test denied.test rebind.allowed.test\n"
            "::1 v6.test\n"
        )
        allow = allow or f"allowed.test:{a}, 127.0.0.1:{a}, [::1]:{v6}, *.allowed.test"
        p = ProxyUnderTest(str(tmp_path), allow, hosts, **settings)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()
