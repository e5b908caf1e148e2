"""Destinations for egress tests, all on loopback: HTTP sites on 127.0.0.1 and ::1, and a
tiny package index serving one wheel built here. Tests name them through a hosts file
the egress proxy reads, so no real name and no real address is ever involved."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import socket
import threading
import zipfile

WHEEL_NAME = "wf_egress_probe"
WHEEL_FILE = f"{WHEEL_NAME}-1.0-py3-none-any.whl"


class Site(http.server.ThreadingHTTPServer):
    daemon_threads = True


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


def start_site(body: bytes, family: int = socket.AF_INET, host: str = "127.0.0.1") -> Site:
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
    threading.Thread(target=site.serve_forever, daemon=True).start()
    return site
