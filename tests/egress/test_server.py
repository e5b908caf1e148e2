"""The proxy end to end on loopback: a client -> the job relay -> the proxy -> a site."""

import http.client
import json
import socket
import struct
import urllib.error
import urllib.request

import pytest

from egress import protocols
from egress.policy import DENIED_TEXT


def opener(relay):
    proxy = f"http://127.0.0.1:{relay.port}"
    return urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))


def test_allowed_name_is_reached_and_others_get_the_403_text(make_proxy, sites, servers):
    p = make_proxy()
    relay = p.relay("job-1")
    get = opener(relay).open
    assert get(f"http://allowed.test:{sites['allowed']}/", timeout=10).read() == b"allowed site\n"
    with pytest.raises(urllib.error.HTTPError) as denied:
        get(f"http://denied.test:{sites['denied']}/", timeout=10)
    assert denied.value.code == 403
    assert denied.value.read().decode() == f"{DENIED_TEXT}: denied.test:{sites['denied']}\n"
    # a name allowed by a wildcard that resolves to loopback is denied: not named explicitly
    with pytest.raises(urllib.error.HTTPError) as rebind:
        get(f"http://rebind.allowed.test:{sites['denied']}/", timeout=10)
    assert rebind.value.code == 403 and "non-public" in rebind.value.headers["X-Warmfleet-Egress-Reason"]
    report = json.loads(p.usage("job-1"))
    by_dest = {(d["destination"], d["allowed"]): d for d in report["destinations"]}
    assert by_dest[(f"allowed.test:{sites['allowed']}", True)]["bytes_in"] > len(b"allowed site\n")
    assert by_dest[(f"denied.test:{sites['denied']}", False)]["reason"].startswith("no entry allows")
    assert json.loads(p.usage("job-1"))["destinations"] == []  # collected once, then forgotten
    samples = {
        s.labels["decision"]: s.value
        for m in p.proxy.registry.collect() for s in m.samples if s.name == "warmfleet_egress_requests_total"
    }
    assert samples == {"allowed": 1.0, "denied": 2.0}
    assert servers["denied"].accepted == 0  # refused before connecting, not after


def test_connect_tunnel_and_ipv6(make_proxy, sites):
    p = make_proxy()
    relay = p.relay("job-2")
    s = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
    s.sendall(f"CONNECT [::1]:{sites['v6']} HTTP/1.1\r\nHost: [::1]:{sites['v6']}\r\n\r\n".encode())
    assert s.recv(1024).startswith(b"HTTP/1.1 200")
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    assert data.endswith(b"v6 site\n")


def socks_connect(port: int, host: str, dport: int) -> tuple[socket.socket, int]:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(host)]) + host.encode() + struct.pack("!H", dport))
    reply = s.recv(10)
    return s, reply[1]


def test_socks5_allowed_and_refused(make_proxy, sites, servers):
    p = make_proxy()
    relay = p.relay("job-3")
    s, code = socks_connect(relay.port, "allowed.test", sites["allowed"])
    assert code == 0
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    assert data.endswith(b"allowed site\n")
    _, code = socks_connect(relay.port, "denied.test", sites["denied"])
    assert code == 2  # connection not allowed by ruleset
    assert servers["denied"].accepted == 0


def test_no_valid_token_no_service(make_proxy, sites, tmp_path):
    p = make_proxy()
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(p.socket)
    s.sendall(f"job-4 forged\nGET http://allowed.test:{sites['allowed']}/ HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    assert s.recv(4096) == b""
    # nor does the job's own token open the control side
    from warmfleet.contract import egress_identity as identity

    assert "bad control request" in p.usage("job-4", identity.job_token("test-secret-0123456789abcdef", "t", "job-4"))


def test_per_job_connection_and_byte_caps(make_proxy, sites):
    p = make_proxy(max_connections_per_job=2, max_bytes_per_job=100_000)
    relay = p.relay("job-5")
    get = opener(relay).open
    url = f"http://allowed.test:{sites['allowed']}/bytes/"
    assert len(get(url + "10", timeout=10).read()) == 10
    # cut off at the byte cap: a short read (or a reset, should the cut land mid-packet)
    with pytest.raises((http.client.IncompleteRead, ConnectionResetError)) as cut:
        get(url + "500000", timeout=10).read()
    if isinstance(cut.value, http.client.IncompleteRead):
        assert len(cut.value.partial) < 100_000
    with pytest.raises(urllib.error.HTTPError) as third:
        get(url + "10", timeout=10)
    assert third.value.code == 403 and "connection limit of 2" in third.value.headers["X-Warmfleet-Egress-Reason"]
    report = json.loads(p.usage("job-5"))
    assert report["connections"] == 2 and report["bytes"] <= 100_000 and report["limit_hit"]
    # another job has its own budget
    assert len(opener(p.relay("job-6")).open(url + "10", timeout=10).read()) == 10


def test_a_relay_whose_proxy_is_gone_refuses_at_once(tmp_path):
    from executor.lean.egress_relay import Relay

    relay = Relay(str(tmp_path / "missing.sock"), 0)
    relay.start("job-7", "t")
    s = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
    try:
        s.sendall(b"GET http://x.test/ HTTP/1.1\r\nHost: x.test\r\n\r\n")
        got = s.recv(100)
    except ConnectionResetError:
        got = b""
    assert got == b""  # closed at once, not left hanging (the 10 s timeout would raise)


def test_kubernetes_shape_relay_to_pod_socket_to_gateway_over_tcp(tmp_path, sites):
    """Kubernetes: the supervisor forwards the jobs' Unix socket to the gateway over TCP,
    and collects a job's usage from the gateway's control port, also over TCP."""
    import asyncio

    from support.egress_sites import SECRET, ProxyUnderTest
    from executor.egress import forward as egress_forward, usage as egress_usage
    from executor.lean.egress_relay import Relay
    from warmfleet.settings import ExecutorSettings
    from warmfleet.contract import egress_identity as identity

    hosts = "127.0.0.1 allowed.test\n"
    p = ProxyUnderTest(str(tmp_path), f"allowed.test:{sites['allowed']},127.0.0.1:{sites['allowed']}", hosts,
                       listen_tcp=True)
    try:
        pod_socket = str(tmp_path / "pod" / "egress.sock")
        gateway = f"127.0.0.1:{p.tcp_ports[0]}"
        asyncio.run_coroutine_threadsafe(egress_forward.start(pod_socket, gateway), p.loop).result(10)
        relay = Relay(pod_socket, 0)
        relay.start("job-k", identity.job_token(SECRET, "t", "job-k"))
        assert opener(relay).open(f"http://allowed.test:{sites['allowed']}/", timeout=10).read() == b"allowed site\n"
        settings = ExecutorSettings(
            redis_url="unix:///nonexistent", pool="t", egress_socket=pod_socket, egress_gateway=gateway,
            egress_control=f"tcp:127.0.0.1:{p.tcp_ports[1]}", egress_secret=SECRET,
        )
        report = asyncio.run_coroutine_threadsafe(egress_usage.collect(settings, "job-k"), p.loop).result(10)
        assert report is not None and report.connections == 1 and report.destinations[0].allowed
    finally:
        p.stop()


def socks_connect_address(port: int, atyp: int, address: bytes, dport: int) -> int:
    """A SOCKS5 CONNECT to a raw IPv4 (atyp 1) or IPv6 (atyp 4) address; the reply code."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    s.sendall(b"\x05\x01\x00" + bytes([atyp]) + address + struct.pack("!H", dport))
    reply = s.recv(10)
    s.close()
    return reply[1] if len(reply) > 1 else -1


def http_proxy_status(port: int, head: bytes) -> bytes:
    """Send one raw request head to the relay; the status line it answers (b"" if it closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(head)
    data = b""
    try:
        while b"\r\n" not in data and (chunk := s.recv(4096)):
            data += chunk
    except ConnectionResetError:
        pass
    s.close()
    return data.split(b"\r\n", 1)[0]


def test_a_denied_destination_is_never_connected_to_however_it_is_spelled(make_proxy, sites, servers):
    """Every spelling of the denied site (names, case, a trailing dot, address literals,
    an allowed name on its port, an IPv4-mapped IPv6 address, decimal and octal forms)
    through every protocol (plain HTTP, CONNECT, SOCKS5 by name and by address) is
    refused, and the site accepts no connection at all: a proxy that connected first and
    answered 403 after would fail here."""
    p = make_proxy()
    relay = p.relay("job-spellings")
    d = sites["denied"]
    hosts = ["denied.test", "DENIED.test", "denied.test.", "127.0.0.1", "rebind.allowed.test", "allowed.test",
             "[::ffff:127.0.0.1]", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "localhost"]
    answers = {}
    for host in hosts:
        answers[f"GET {host}"] = http_proxy_status(
            relay.port, f"GET http://{host}:{d}/ HTTP/1.1\r\nHost: {host}:{d}\r\n\r\n".encode())
        answers[f"CONNECT {host}"] = http_proxy_status(
            relay.port, f"CONNECT {host}:{d} HTTP/1.1\r\nHost: {host}:{d}\r\n\r\n".encode())
    for host in hosts:
        _, code = socks_connect(relay.port, host.strip("[]"), d)
        answers[f"SOCKS name {host}"] = code
    answers["SOCKS ipv4"] = socks_connect_address(relay.port, 1, socket.inet_aton("127.0.0.1"), d)
    answers["SOCKS ipv6-mapped"] = socks_connect_address(
        relay.port, 4, socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1"), d)
    refused = {k: v for k, v in answers.items() if v in (b"HTTP/1.1 403 Forbidden", protocols.SOCKS_NOT_ALLOWED)}
    assert refused == answers, {k: v for k, v in answers.items() if k not in refused}
    assert servers["denied"].accepted == 0, answers
    # and the allowed site still answers through the same relay
    assert http_proxy_status(relay.port, f"GET http://allowed.test:{sites['allowed']}/ HTTP/1.1\r\nHost: a\r\n\r\n".encode()).endswith(b" 200 OK")
