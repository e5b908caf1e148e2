"""The relay the supervisor runs for a session (executor/egress/sessions.py), in-process
against a real egress proxy (its own loop in a thread) and loopback sites: each call's
connections carry that call's identity and end with it, nothing passes between calls,
and the proxy takes no identity but the one a token was made for."""

from __future__ import annotations

import asyncio
import ctypes
import http.client
import json
import os
import socket
import urllib.error
import urllib.request

import pytest

from executor.egress.sessions import BETWEEN_CALLS, PodRelays, SessionEgress, listen_in_namespace
from warmfleet.settings import ExecutorSettings
from support.egress_sites import SECRET, ProxyUnderTest, allowed_and_denied
from warmfleet.contract import egress_identity as identity

DENIED = "network access denied by sandbox policy"


@pytest.fixture(scope="module")
def sites():
    with allowed_and_denied() as ports:
        yield ports


@pytest.fixture
def proxy(tmp_path, sites):
    a = sites["allowed"]
    p = ProxyUnderTest(str(tmp_path), f"allowed.test:{a},127.0.0.1:{a}", "127.0.0.1 allowed.test denied.test\n")
    yield p
    p.stop()


def settings_for(p: ProxyUnderTest) -> ExecutorSettings:
    return ExecutorSettings(redis_url="redis://unused", pool="t", egress_socket=p.socket,
                            egress_control=f"unix:{os.path.dirname(p.socket)}/control.sock", egress_secret=SECRET)


async def relay_for(settings: ExecutorSettings, pod: PodRelays | None = None) -> tuple[SessionEgress, int]:
    """The relay on a plain loopback listener (the namespace part is tested below)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    egress = SessionEgress(settings, listener, pod)
    await egress.serve()
    return egress, listener.getsockname()[1]


def fetch(port: int, url: str) -> str:
    proxy = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
    try:
        return opener.open(url, timeout=10).read().decode().strip()
    except urllib.error.HTTPError as e:
        return f"{e.code} {e.read().decode().strip()}"


@pytest.mark.timeout(60)
async def test_each_call_is_its_own_identity_and_nothing_passes_between_calls(proxy, sites):
    a, d = sites["allowed"], sites["denied"]
    egress, port = await relay_for(settings_for(proxy))
    try:
        # before any call: a clear refusal, nothing reaches the proxy
        assert await asyncio.to_thread(fetch, port, f"http://allowed.test:{a}/") == f"403 {BETWEEN_CALLS}"
        egress.begin("call-1")
        assert await asyncio.to_thread(fetch, port, f"http://allowed.test:{a}/") == "allowed site"
        tunnel = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", port), 10)
        tunnel.sendall(f"CONNECT allowed.test:{a} HTTP/1.1\r\nHost: allowed.test\r\n\r\n".encode())
        assert (await asyncio.to_thread(tunnel.recv, 100)).startswith(b"HTTP/1.1 200")
        first = await egress.finish()
        assert first is not None and first.connections == 2 and {x.destination for x in first.destinations} == {
            f"allowed.test:{a}"}
        tunnel.settimeout(10)
        assert await asyncio.to_thread(tunnel.recv, 100) == b""  # the call's connections end with it
        # between calls (a background thread): refused, in HTTP and in SOCKS
        assert await asyncio.to_thread(fetch, port, f"http://allowed.test:{a}/") == f"403 {BETWEEN_CALLS}"
        socks = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", port), 10)
        socks.sendall(b"\x05\x01\x00")
        assert await asyncio.to_thread(socks.recv, 2) == b"\x05\xff"
        socks.close()
        egress.begin("call-2")
        assert await asyncio.to_thread(fetch, port, f"http://allowed.test:{d}/") == f"403 {DENIED}: allowed.test:{d}"
        second = await egress.finish()
        assert second is not None and second.connections == 0
        assert [(x.destination, x.allowed) for x in second.destinations] == [(f"allowed.test:{d}", False)]
        # nothing was counted under the first call's id after its report
        assert json.loads(proxy.usage("call-1"))["connections"] == 0
        # a call that made no connection: an empty report, no round trip to the proxy
        egress.begin("call-3")
        quiet = await egress.finish()
        assert quiet is not None and quiet.connections == 0 and quiet.destinations == []
    finally:
        egress.close()


@pytest.mark.timeout(60)
async def test_with_a_gateway_the_relay_goes_to_it_over_tcp(tmp_path, sites):
    """Kubernetes: the gateway is another Deployment; the supervisor connects to it directly."""
    a = sites["allowed"]
    p = ProxyUnderTest(str(tmp_path), f"allowed.test:{a},127.0.0.1:{a}", "127.0.0.1 allowed.test\n", listen_tcp=True)
    listen, control = p.tcp_ports
    settings = ExecutorSettings(redis_url="redis://unused", pool="t", egress_socket=str(tmp_path / "absent.sock"),
                                egress_gateway=f"127.0.0.1:{listen}", egress_control=f"tcp:127.0.0.1:{control}",
                                egress_secret=SECRET)
    egress, port = await relay_for(settings)
    try:
        egress.begin("call-k8s")
        assert await asyncio.to_thread(fetch, port, f"http://allowed.test:{a}/") == "allowed site"
        report = await egress.finish()
        assert report is not None and report.connections == 1
    finally:
        egress.close()
        p.stop()


@pytest.mark.timeout(60)
async def test_the_pods_relays_together_hold_a_bounded_number_of_connections(proxy, sites):
    """Each relayed connection is two of the supervisor's descriptors: past the pod's bound
    a connection is closed at once, and room comes back when a call ends."""
    a = sites["allowed"]
    pod = PodRelays(limit=2)  # one connection, pod-wide
    first, port1 = await relay_for(settings_for(proxy), pod)
    second, port2 = await relay_for(settings_for(proxy), pod)
    try:
        first.begin("call-a")
        second.begin("call-b")
        tunnel = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", port1), 10)
        tunnel.sendall(f"CONNECT allowed.test:{a} HTTP/1.1\r\nHost: allowed.test\r\n\r\n".encode())
        assert (await asyncio.to_thread(tunnel.recv, 100)).startswith(b"HTTP/1.1 200")
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            await asyncio.to_thread(fetch, port2, f"http://allowed.test:{a}/")
        await first.finish()  # the first session's call ended: its connection with it
        assert await asyncio.to_thread(fetch, port2, f"http://allowed.test:{a}/") == "allowed site"
        tunnel.close()
        await second.finish()
        assert pod.writers == set()  # every writer given back
    finally:
        first.close()
        second.close()


def present(p: ProxyUnderTest, job_id: str, token: str, port: int) -> bytes:
    """Ask the proxy directly, as code holding some identity would."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(p.socket)
    s.sendall(f"{job_id} {token}\nGET http://allowed.test:{port}/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return data


@pytest.mark.timeout(60)
def test_the_proxy_takes_a_call_id_only_with_its_own_token(proxy, sites):
    a = sites["allowed"]
    own = identity.job_token(SECRET, "t", "call-2")
    assert present(proxy, "call-2", own, a).endswith(b"allowed site\n")
    for token in (identity.job_token(SECRET, "t", "call-1"),  # another call's
                  identity.job_token(SECRET, "t", "job-7"),  # a job's
                  identity.job_token(SECRET, "other-pool", "call-2"),  # another pool's
                  identity.control_token(SECRET, "t", "call-2"),  # the supervisor's control token
                  "0" * 40):
        assert present(proxy, "call-2", token, a) == b""  # closed without a word
    assert json.loads(proxy.usage("call-2"))["connections"] == 1


CLONE_NEWNET = 0x40000000


@pytest.mark.timeout(30)
def test_the_listener_is_made_in_the_sessions_namespace_not_ours():
    """As root on Linux (CI runs as root; gVisor is covered end to end)."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the "session": a namespace of its own, then connect to the port in it
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.unshare(CLONE_NEWNET) == 0
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # Linux leaves lo down
                import fcntl
                import struct
                flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, struct.pack("16sH14x", b"lo", 0)))[1]
                fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))
            os.write(ready_w, b"r")
            port = int(os.read(go_r, 16))
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(b"from inside")
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    try:
        assert os.read(ready_r, 1) == b"r"
        with pytest.raises(OSError, match="not the session's"):  # a process of another uid: refused
            listen_in_namespace(pid, 62000, 0)
        listener = listen_in_namespace(pid, 0, 0)
        port = listener.getsockname()[1]
        with pytest.raises(OSError):  # not in our namespace
            socket.create_connection(("127.0.0.1", port), timeout=2)
        os.write(go_w, str(port).encode())
        listener.setblocking(True)
        listener.settimeout(10)
        conn, _ = listener.accept()
        assert conn.recv(100) == b"from inside"
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
