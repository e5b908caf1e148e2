"""Sessions in a pool with an egress allow-list, through a real runsc pod and the fleet's
egress proxy: each call reaches what the pool allows through the relay the supervisor
runs in the session's namespace, gets the policy's denial for the rest, and its Result
reports that call's egress. Destinations are loopback servers the test runs, named
through a hosts file the proxy reads (as tests/e2e/test_egress.py)."""

from __future__ import annotations

import pytest

from dispatcher import Client
from support.egress_sites import allowed_and_denied
from support.sessions_fleet import start_fleet
from warmfleet.contract import egress_identity as identity
from warmfleet.contract.schema import Status

DENIED = "network access denied by sandbox policy"
POOL = "sess-egress"


@pytest.fixture(scope="module")
def sites():
    with allowed_and_denied() as ports:
        yield ports


@pytest.fixture(scope="module")
def efleet(sites, tmp_path_factory):
    hosts = tmp_path_factory.mktemp("session-egress") / "hosts"
    hosts.write_text("127.0.0.1 allowed.test denied.test\n")
    a = sites["allowed"]
    f = start_fleet(pool=POOL, sessions=2, egress_allow=f"allowed.test:{a},127.0.0.1:{a}", egress_hosts_file=str(hosts))
    yield f
    f.stop()


@pytest.fixture(scope="module")
def eclient(efleet):
    with Client(efleet.client_url, pool=POOL) as c:
        yield c


FETCH = """\
import urllib.request, urllib.error
def fetch(url):
    try:
        return urllib.request.urlopen(url, timeout=20).read().decode().strip()
    except urllib.error.HTTPError as e:
        return f"{e.code} {e.read().decode().strip()}"
    except OSError as e:
        return f"{type(e).__name__} {e}"
"""


@pytest.mark.timeout(120)
def test_each_call_reaches_what_the_pool_allows_and_reports_its_own_egress(eclient, efleet, sites):
    a, d = sites["allowed"], sites["denied"]
    with eclient.session(idle_timeout=60, max_lifetime=300) as s:
        first = s.run(FETCH + f"seen = fetch('http://allowed.test:{a}/')\nprint(seen)\n", timeout=60)
        assert (first.status, first.stdout) == (Status.OK, "allowed site\n"), first
        assert first.egress is not None and first.egress.connections == 1, first.egress
        (dest,) = first.egress.destinations
        assert (dest.destination, dest.allowed) == (f"allowed.test:{a}", True) and dest.bytes_in > len("allowed site")

        second = s.run(
            f"print(fetch('http://allowed.test:{d}/'))\n"  # the allowed name on a port the pool does not allow
            "import socket\n"
            "try:\n    socket.getaddrinfo('allowed.test', 80)\nexcept OSError as e:\n    print(e)\n"
            "print(seen)\n",  # the first call's globals survive
            timeout=60,
        )
        assert second.status is Status.OK, second
        lines = second.stdout.splitlines()
        assert lines[0] == f"403 {DENIED}: allowed.test:{d}", second.stdout
        assert f"{DENIED}: allowed.test; names are resolved by the pool's egress proxy" in lines[1], second.stdout
        assert lines[2] == "allowed site"
        # this call's egress only: its denial, not the first call's request
        assert second.egress is not None and second.egress.connections == 0, second.egress
        assert [(x.destination, x.allowed) for x in second.egress.destinations] == [(f"allowed.test:{d}", False)]

        # SOCKS5 on the same port: a denied destination gets reply 2 (not allowed by ruleset)
        socks = s.run(
            "import socket, struct\n"
            "c = socket.create_connection(('127.0.0.1', 3128), timeout=20)\n"
            "c.sendall(b'\\x05\\x01\\x00'); assert c.recv(2) == b'\\x05\\x00'\n"
            f"c.sendall(b'\\x05\\x01\\x00\\x03' + bytes([11]) + b'denied.test' + struct.pack('>H', {d}))\n"
            "print(c.recv(10)[1])\n",
            timeout=60,
        )
        assert (socks.status, socks.stdout) == (Status.OK, "2\n"), socks

        # The token never enters the session: no 40-hex string of any call's token in what
        # the session uid can read of every process (cmdline, environ), nor a relay thread.
        exposed = s.run(
            "import os, re\n"
            "found = set()\n"
            "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
            "    for part in ('cmdline', 'environ'):\n"
            "        try:\n"
            "            found |= set(re.findall(rb'[0-9a-f]{40}', open(f'/proc/{pid}/{part}', 'rb').read()))\n"
            "        except OSError:\n"
            "            pass\n"
            "print(sorted(x.decode() for x in found))\n"
            "print(len(os.listdir('/proc/self/task')), os.environ['HTTP_PROXY'], os.environ['ALL_PROXY'])\n",
            timeout=60,
        )
        secret = efleet.egress.secret
        tokens = {identity.job_token(secret, POOL, r.job_id) for r in (first, second, socks, exposed)}
        listed, threads = exposed.stdout.splitlines()
        assert not tokens & set(eval(listed)), exposed.stdout  # noqa: S307 - our own print of a list of str
        assert threads == "1 http://127.0.0.1:3128 http://127.0.0.1:3128", threads


@pytest.mark.timeout(120)
def test_a_session_without_network_use_gets_an_empty_report_and_two_sessions_are_apart(eclient, sites):
    a = sites["allowed"]
    with eclient.session() as s1, eclient.session() as s2:
        quiet = s1.run("x = 1")
        assert quiet.ok and quiet.egress is not None and quiet.egress.destinations == [] and quiet.egress.connections == 0
        r2 = s2.run(FETCH + f"print(fetch('http://allowed.test:{a}/'))\n", timeout=60)
        r1 = s1.run(FETCH + f"print(fetch('http://allowed.test:{a}/'))\n", timeout=60)
        assert r1.stdout == r2.stdout == "allowed site\n", (r1, r2)
        assert r1.egress.connections == r2.egress.connections == 1


@pytest.mark.timeout(120)
def test_a_background_thread_has_no_egress_between_calls(eclient, sites):
    """A thread a call started keeps fetching after the call returned: between calls it
    gets the 403 that says why, not a hang and not the site."""
    import time

    a = sites["allowed"]
    with eclient.session(idle_timeout=60) as s:
        started = s.run(
            FETCH + "import threading, time\n"
            "seen = []\n"
            "def poll():\n"
            "    while not any(x.startswith('403') for x in seen):\n"
            f"        seen.append(fetch('http://allowed.test:{a}/'))\n"
            "        time.sleep(0.05)\n"
            "threading.Thread(target=poll, daemon=True).start()\n",
            timeout=30,
        )
        assert started.ok, started
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = s.run("print(repr(seen[-1]) if seen else '')", timeout=30)
            if "403" in r.stdout:
                break
            time.sleep(0.3)  # the gap between calls is what the thread must hit
        assert r.stdout.strip() == repr(f"403 {DENIED}: a session reaches the network only while a call runs"), r


@pytest.mark.timeout(120)
def test_a_connection_flood_is_bounded_and_the_pod_serves_on(eclient, sites):
    """The relay runs in the supervisor: a call that opens hundreds of tunnels and holds
    them gets at most 64 (the session's bound, and the proxy's per-call cap), the rest are
    closed or refused at once, the call's end closes them all, and the next call and the
    pod's jobs are served as usual."""
    a = sites["allowed"]
    with eclient.session(idle_timeout=60) as s:
        flood = s.run(
            "import socket, collections\n"
            "seen, held = collections.Counter(), []\n"
            "for _ in range(300):\n"
            "    try:\n"
            "        c = socket.create_connection(('127.0.0.1', 3128), timeout=10)\n"
            f"        c.sendall(b'CONNECT allowed.test:{a} HTTP/1.1\\r\\nHost: allowed.test\\r\\n\\r\\n')\n"
            "        head = c.recv(100)\n"
            "    except OSError:\n"
            "        head = b''\n"
            "    kind = head[9:12].decode() or 'closed'\n"
            "    seen[kind] += 1\n"
            "    if kind == '200':\n"
            "        held.append(c)\n"
            "print(dict(seen))\n",
            timeout=60, cpu_time=30,
        )
        assert flood.status is Status.OK, flood
        seen = eval(flood.stdout)  # noqa: S307 - our own print of a dict
        assert 1 <= seen.get("200", 0) <= 64 and sum(seen.values()) == 300, seen
        assert set(seen) <= {"200", "403", "closed"}, seen
        after = s.run(FETCH + f"print(fetch('http://allowed.test:{a}/'))\n", timeout=60)
        assert (after.status, after.stdout) == (Status.OK, "allowed site\n"), after
        assert after.egress.connections == 1  # a call of its own: the flood's budget is not its
    job = eclient.run("print('job')", timeout=30)
    assert (job.status, job.stdout) == (Status.OK, "job\n"), job
