"""An egress proxy in this process (its own asyncio loop in a thread), HTTP servers on
127.0.0.1 and ::1 standing in for destinations, and a hosts file naming them. Nothing
here sends a packet anywhere but loopback."""

from __future__ import annotations

import socket

import pytest

from support.egress_sites import ProxyUnderTest, start_site


@pytest.fixture(scope="module")
def servers():
    """The sites themselves (Site.accepted counts connections: the denied one must stay at 0)."""
    made = {
        "allowed": start_site(b"allowed site\n"),
        "denied": start_site(b"denied site\n"),
        "v6": start_site(b"v6 site\n", socket.AF_INET6, "::1"),
    }
    yield made
    for s in made.values():
        s.shutdown()


@pytest.fixture(scope="module")
def sites(servers):
    return {name: s.server_address[1] for name, s in servers.items()}


@pytest.fixture
def make_proxy(tmp_path, sites):
    made = []

    def make(allow: str | None = None, **settings) -> ProxyUnderTest:
        a, v6 = sites["allowed"], sites["v6"]
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
