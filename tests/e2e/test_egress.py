"""A pool with an egress allow-list, end to end: jobs in runsc reach an allowed site on the
host's loopback through their relay and the fleet's egress proxy, and get the policy's
403 text for everything else. Destinations are loopback servers named through a hosts
file the proxy reads; the only loopback entries allowed are the allowed sites' ports."""

from __future__ import annotations

import json
import os
import socket

import pytest

from dispatcher import Client
from support.egress_sites import WHEEL_NAME, start_site, start_tls_site
from warmfleet.contract.schema import Status

DENIED = "network access denied by sandbox policy"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The loopback sites (Site.accepted counts connections: the denied one must stay at 0)."""
    tls_site, cert = start_tls_site(str(tmp_path_factory.mktemp("tls")), "secure.test", b"tls site\n")
    made = {
        "allowed": start_site(b"allowed site\n"),
        "denied": start_site(b"denied site\n"),
        "index": start_site(b"index\n"),
        "v6": start_site(b"v6 site\n", socket.AF_INET6, "::1"),
        "tls": tls_site,
    }
    yield made, cert
    for site in made.values():
        site.shutdown()


@pytest.fixture(scope="module")
def sites(servers):
    made, cert = servers
    return {**{name: site.server_address[1] for name, site in made.items()}, "cert": cert}


@pytest.fixture(scope="module")
def denied_site(servers):
    """Nothing may ever connect to it, however a job spells it: a proxy that connected
    first and answered 403 after would raise its `accepted` count."""
    return servers[0]["denied"]


@pytest.fixture(scope="module")
def egress_fleet(sites, tmp_path_factory):
    from warmfleet.local.fleet import LocalFleet
    from warmfleet.settings import FleetSettings

    hosts = tmp_path_factory.mktemp("egress") / "hosts"
    hosts.write_text(
        "127.0.0.1 allowed.test denied.test pkgs.test rebind.allowed.test secure.test\n::1 v6.test\n"
    )
    a, i, v6, t = sites["allowed"], sites["index"], sites["v6"], sites["tls"]
    allow = (f"allowed.test:{a},127.0.0.1:{a},pkgs.test:{i},127.0.0.1:{i},v6.test:{v6},[::1]:{v6},*.allowed.test,"
             f"secure.test:{t},127.0.0.1:{t}")
    caps = {"WARMFLEET_EGRESS_MAX_CONNECTIONS_PER_JOB": "12", "WARMFLEET_EGRESS_MAX_BYTES_PER_JOB": "1000000"}
    os.environ.update(caps)
    try:
        fleet = LocalFleet(
            FleetSettings(pods=1, slots=1, pool="egress-test", egress_allow=allow, egress_hosts_file=str(hosts))
        )
        fleet.start(ready_timeout=90)
    finally:
        for key in caps:
            os.environ.pop(key, None)
    yield fleet
    fleet.stop()


@pytest.fixture(scope="module")
def eclient(egress_fleet):
    with Client(egress_fleet.client_url, pool="egress-test") as c:
        yield c


URLLIB = """\
import urllib.request, urllib.error
for url in {urls!r}:
    try:
        print(url, urllib.request.urlopen(url, timeout=20).read().decode().strip())
    except urllib.error.HTTPError as e:
        print(url, e.code, e.read().decode().strip())
    except OSError as e:
        print(url, type(e).__name__, e)
"""


def test_urllib_reaches_the_allowed_site_only(eclient, sites, denied_site):
    a, d = sites["allowed"], sites["denied"]
    urls = [f"http://allowed.test:{a}/", f"http://denied.test:{d}/", f"http://rebind.allowed.test:{d}/",
            f"http://allowed.test:{d}/", f"http://v6.test:{sites['v6']}/"]
    r = eclient.run(URLLIB.format(urls=urls), timeout=60)
    assert r.status is Status.OK, r
    assert r.stdout.splitlines() == [
        f"http://allowed.test:{a}/ allowed site",
        f"http://denied.test:{d}/ 403 {DENIED}: denied.test:{d}",
        f"http://rebind.allowed.test:{d}/ 403 {DENIED}: rebind.allowed.test:{d}",  # resolves to loopback
        f"http://allowed.test:{d}/ 403 {DENIED}: allowed.test:{d}",  # the allowed name, another port
        f"http://v6.test:{sites['v6']}/ v6 site",
    ], r.stdout
    egress = r.egress
    assert egress is not None and egress.connections == 2, egress
    seen = {(e.destination, e.allowed) for e in egress.destinations}
    assert (f"allowed.test:{a}", True) in seen and (f"denied.test:{d}", False) in seen
    allowed = next(e for e in egress.destinations if e.destination == f"allowed.test:{a}")
    assert allowed.bytes_in > len("allowed site") and allowed.bytes_out > 0
    # a JSON line per denial, with the job id, in the proxy's log
    with open(egress_fleet_log(eclient)) as f:
        denials = [json.loads(line) for line in f if '"egress denied"' in line]
    assert any(d["job_id"] == r.job_id and d["destination"] == f"denied.test:{d_port(d)}" for d in denials), denials
    assert denied_site.accepted == 0  # refused before connecting: by name, another port, a rebinding name


def egress_fleet_log(client) -> str:
    return client._egress_log  # set by the fixture below


def d_port(entry: dict) -> str:
    return entry["destination"].rsplit(":", 1)[1]


@pytest.fixture(autouse=True)
def _log_path(eclient, egress_fleet):
    eclient._egress_log = egress_fleet.egress.log_path


def test_curl_plain_connect_and_socks(eclient, sites, denied_site):
    a, d = sites["allowed"], sites["denied"]
    r = eclient.run(
        f"curl -sS http://allowed.test:{a}/\n"
        f"curl -sS -p http://allowed.test:{a}/\n"  # through a CONNECT tunnel, as for https
        f"curl -sS -x socks5h://127.0.0.1:3128 http://allowed.test:{a}/\n"
        f"curl -sS -w ' %{{http_code}}\\n' http://denied.test:{d}/\n"
        f"curl -sS -x socks5h://127.0.0.1:3128 http://denied.test:{d}/ 2>&1; echo \"exit $?\"\n",
        language="bash", timeout=60,
    )
    assert r.status is Status.OK, r
    lines = r.stdout.splitlines()
    assert lines[:5] == ["allowed site", "allowed site", "allowed site", f"{DENIED}: denied.test:{d}", " 403"], lines
    # SOCKS reply 2: "connection not allowed by ruleset"
    assert lines[-1] == "exit 97" and "SOCKS5 connection to denied.test. (2)" in lines[-2], lines
    assert denied_site.accepted == 0  # plain, CONNECT and SOCKS refusals all came before any connect


def test_requests_and_httpx_in_the_job_environment(eclient, sites, denied_site):
    a, d = sites["allowed"], sites["denied"]
    r = eclient.run(
        "import subprocess, sys\n"
        "code = ('import requests; '\n"
        f"        'print(requests.get(\"http://allowed.test:{a}/\", timeout=20).text.strip()); '\n"
        f"        'r = requests.get(\"http://denied.test:{d}/\", timeout=20); print(r.status_code, r.text.strip()); '\n"
        "        'import httpx; '\n"
        f"        'print(httpx.get(\"http://allowed.test:{a}/\", timeout=20).text.strip()); '\n"
        f"        'r = httpx.get(\"http://denied.test:{d}/\", timeout=20); print(r.status_code, r.text.strip())')\n"
        "p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)\n"
        "print(p.stdout, p.stderr[-2000:])\n",
        timeout=60,
    )
    assert r.status is Status.OK, r
    both = f"allowed site\n403 {DENIED}: denied.test:{d}\n"
    assert r.stdout.startswith(both + both), r  # requests, then httpx
    assert denied_site.accepted == 0


def test_pip_install_from_an_allowed_index(eclient, sites):
    i = sites["index"]
    r = eclient.run(
        "import subprocess, sys\n"
        "p = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-cache-dir', '--disable-pip-version-check',\n"
        f"    '--index-url', 'http://pkgs.test:{i}/simple/', '--trusted-host', 'pkgs.test',\n"
        f"    '--target', 'lib', '{WHEEL_NAME}'], capture_output=True, text=True)\n"
        "print(p.returncode, p.stderr[-3000:])\n"
        f"sys.path.insert(0, 'lib'); import {WHEEL_NAME}; print('answer', {WHEEL_NAME}.ANSWER)\n",
        timeout=120, memory_mb=512,
    )
    assert r.status is Status.OK, r
    assert r.stdout.startswith("0 ") and r.stdout.endswith("answer 42\n"), r


def test_the_proxy_admin_side_and_policy_are_out_of_reach(eclient, sites):
    r = eclient.run(
        "import os, socket, urllib.request, urllib.error\n"
        "for path in ('/run/egress-control.sock', '/run/egress.env', '/tmp/warmfleet-egress/egress.sock'):\n"
        "    try:\n"
        "        if path.endswith('.sock'):\n"
        "            s = socket.socket(socket.AF_UNIX); s.connect(path); s.sendall(b'USAGE x y\\n')\n"
        "            print(path, 'CONNECTED', s.recv(100))\n"
        "        else:\n"
        "            print(path, 'READ', open(path).read())\n"
        "    except OSError as e:\n"
        "        print(path, type(e).__name__)\n"
        # Through the relay (NO_PROXY would send 127.0.0.1 to the job's own lo): anything
        # on the host's loopback but the allowed sites' ports is refused.
        "os.environ.pop('no_proxy'); os.environ.pop('NO_PROXY')\n"
        "relay = urllib.request.build_opener(urllib.request.ProxyHandler({'http': os.environ['HTTP_PROXY']}))\n"
        "for port in (22, 6379, 9464):\n"
        "    try:\n"
        "        relay.open(f'http://127.0.0.1:{port}/', timeout=20)\n"
        "    except urllib.error.HTTPError as e:\n"
        "        print(port, e.code)\n"
        "    except OSError as e:\n        print(port, type(e).__name__, e)\n",
        timeout=60,
    )
    assert r.status is Status.OK, r
    lines = r.stdout.splitlines()
    assert lines[0] == "/run/egress-control.sock PermissionError" and lines[1] == "/run/egress.env PermissionError"
    # its own socket answers only a job's own request, and never as the control side
    assert lines[2].startswith("/tmp/warmfleet-egress/egress.sock CONNECTED b''"), lines
    assert lines[3:] == ["22 403", "6379 403", "9464 403"], lines


def test_per_job_connection_and_byte_caps(eclient, sites):
    a = sites["allowed"]
    r = eclient.run(
        "import urllib.request, urllib.error\n"
        f"url = 'http://allowed.test:{a}/'\n"
        "try:\n"
        "    print(len(urllib.request.urlopen(url + 'bytes/2000000', timeout=20).read()))\n"
        "except Exception as e:\n    print('cut', type(e).__name__)\n"
        "for _ in range(14):\n"
        "    try:\n"
        "        urllib.request.urlopen(url, timeout=20).read()\n"
        "    except urllib.error.HTTPError as e:\n"
        "        print(e.code, e.headers['X-Warmfleet-Egress-Reason']); break\n",
        timeout=60,
    )
    assert r.status is Status.OK, r
    first, second = r.stdout.splitlines()
    assert first.startswith("cut") or int(first) < 2_000_000, first  # the byte cap (1 MB) cut it short
    assert second.startswith("403 byte limit of 1000000"), second
    assert r.egress is not None and r.egress.bytes <= 1_000_000 and r.egress.limit_hit
    # the next job has its own budget; the connection cap holds too
    r = eclient.run(
        "import urllib.request, urllib.error\n"
        "for n in range(14):\n"
        "    try:\n"
        f"        urllib.request.urlopen('http://allowed.test:{a}/', timeout=20).read()\n"
        "    except urllib.error.HTTPError as e:\n"
        "        print(n, e.code, e.headers['X-Warmfleet-Egress-Reason']); break\n",
        timeout=60,
    )
    assert r.stdout == "12 403 connection limit of 12 per job reached\n", r
    assert r.egress is not None and r.egress.connections == 12


def test_a_name_lookup_inside_the_job_points_to_the_proxy(eclient):
    r = eclient.run(
        "import socket\ntry:\n    socket.getaddrinfo('allowed.test', 80)\nexcept OSError as e:\n    print(e)\n", timeout=30
    )
    assert "network access denied by sandbox policy: allowed.test; names are resolved by the pool's egress proxy" in r.stdout, r


def test_https_through_connect_with_urllib_and_curl(eclient, sites, denied_site):
    t, d = sites["tls"], sites["denied"]
    r = eclient.run(
        "import ssl, subprocess, urllib.request\n"
        "ctx = ssl.create_default_context(cafile='ca.pem')\n"
        f"print(urllib.request.urlopen('https://secure.test:{t}/', context=ctx, timeout=20).read().decode().strip())\n"
        f"p = subprocess.run(['curl', '-sS', '--cacert', 'ca.pem', 'https://secure.test:{t}/'], capture_output=True, text=True)\n"
        "print(p.stdout.strip(), p.stderr.strip())\n"
        # a TLS destination off the list: the CONNECT is refused with the policy's text
        f"p = subprocess.run(['curl', '-sS', '--cacert', 'ca.pem', 'https://denied.test:{d}/'], capture_output=True, text=True)\n"
        "print(p.returncode, p.stderr.strip())\n",
        files={"ca.pem": sites["cert"]}, timeout=60,
    )
    assert r.status is Status.OK, r
    lines = r.stdout.splitlines()
    assert [line.strip() for line in lines[:2]] == ["tls site", "tls site"], r
    assert lines[2].startswith("56 ") and "403" in lines[2], r  # curl: CONNECT tunnel failed, response 403
    (denied,) = [d for d in r.egress.destinations if not d.allowed]
    assert denied.destination == f"denied.test:{d}"
    assert denied_site.accepted == 0  # the CONNECT was refused before any connection
