"""Destinations for egress tests, all on loopback: HTTP sites on 127.0.0.1 and ::1, and a
tiny package index serving one wheel built here. Tests name them through a hosts file
the egress proxy reads, so no real name and no real address is ever involved."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import http.server
import io
import os
import socket
import threading
import zipfile
from collections.abc import Iterator

from egress.server import EgressProxy
from warmfleet.settings import EgressSettings
from executor.lean.egress_relay import Relay
from warmfleet.contract import egress_identity as identity

SECRET = "test-secret-0123456789abcdef"

WHEEL_NAME = "wf_egress_probe"
WHEEL_FILE = f"{WHEEL_NAME}-1.0-py3-none-any.whl"


class Site(http.server.ThreadingHTTPServer):
    """A loopback site that counts the connections it accepts: a denied destination's
    site must accept none (the proxy refuses before it connects, not after)."""

    daemon_threads = True
    accepted = 0

    def get_request(self):
        request = super().get_request()
        self.accepted += 1  # one thread accepts: no lock needed
        return request


def build_wheel() -> bytes:
    files = {
        f"{WHEEL_NAME}/__init__.py": b"ANSWER = 42\n",
        f"{WHEEL_NAME}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {WHEEL_NAME}\nVersion: 1.0\n".encode(),
        f"{WHEEL_NAME}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: warmfleet-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{WHEEL_NAME}-1.0.dist-info/RECORD,,")
    files[f"{WHEEL_NAME}-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def start_site(body: bytes, family: int = socket.AF_INET, host: str = "127.0.0.1", tls=None) -> Site:
    """GET / -> body; GET /bytes/N -> N bytes; GET /simple/... -> a one-wheel package index."""
    wheel = build_wheel()
    index = f'<html><body><a href="/files/{WHEEL_FILE}">{WHEEL_FILE}</a></body></html>'.encode()
    pages = {
        "/simple/": f'<html><body><a href="/simple/{WHEEL_NAME.replace("_", "-")}/">x</a></body></html>'.encode(),
        f"/simple/{WHEEL_NAME.replace('_', '-')}/": index,
        f"/simple/{WHEEL_NAME}/": index,
        f"/files/{WHEEL_FILE}": wheel,
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path.startswith("/bytes/"):
                data = b"x" * int(self.path.rsplit("/", 1)[1])
            else:
                data = pages.get(self.path, body if self.path == "/" else None)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html" if self.path.startswith("/simple") else "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    cls = type("FamilySite", (Site,), {"address_family": family})
    site = cls((host, 0), Handler)
    if tls is not None:  # an ssl.SSLContext: HTTPS
        site.socket = tls.wrap_socket(site.socket, server_side=True)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    return site


class ProxyUnderTest:
    """An egress proxy in this process, on its own asyncio loop in a thread."""

    def __init__(self, tmp: str, allow: str, hosts: str, listen_tcp: bool = False, **settings) -> None:
        hosts_file = os.path.join(tmp, "hosts")
        with open(hosts_file, "w") as f:
            f.write(hosts)
        self.settings = EgressSettings(
            egress_pool="t", egress_allow=allow, egress_secret=SECRET,
            egress_listen="tcp:127.0.0.1:0" if listen_tcp else f"unix:{tmp}/egress.sock",
            egress_control="tcp:127.0.0.1:0" if listen_tcp else f"unix:{tmp}/control.sock",
            egress_hosts_file=hosts_file, **{f"egress_{k}": v for k, v in settings.items()},
        )
        self.socket = f"{tmp}/egress.sock"
        self.loop = asyncio.new_event_loop()
        self.proxy = EgressProxy(self.settings)
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self.loop).result(10)
        self.tcp_ports = [s.sockets[0].getsockname()[1] for s in self.proxy.servers if listen_tcp]

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


def start_tls_site(workdir: str, name: str, body: bytes) -> tuple[Site, bytes]:
    """An HTTPS site on 127.0.0.1 with a fresh self-signed certificate for `name`; returns
    the site and the certificate (a job trusts it through an input file)."""
    import ssl
    import subprocess

    key, cert = os.path.join(workdir, "tls.key"), os.path.join(workdir, "tls.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True, timeout=60,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    site = start_site(body, tls=ctx)
    with open(cert, "rb") as f:
        return site, f.read()


@contextlib.contextmanager
def allowed_and_denied() -> Iterator[dict[str, int]]:
    """Two loopback sites, {"allowed": port, "denied": port}, for a pool that allows one."""
    made = {"allowed": start_site(b"allowed site\n"), "denied": start_site(b"denied site\n")}
    try:
        yield {name: site.server_address[1] for name, site in made.items()}
    finally:
        for site in made.values():
            site.shutdown()
