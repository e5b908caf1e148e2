"""HTTP probes and metrics for clusters that prefer HTTP probes to exec probes (an exec
probe starts a process in the gVisor sandbox each time).

GET /livez and /readyz answer 200 or 503 from the executor's health file (the same
checks as `warmfleet probe`); /metrics is the sidecar's recycle counters.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import generate_latest

from gc_sidecar.recycler import REGISTRY
from warmfleet.contract import probe


def make_server(addr: str, port: int, health_file: str, stale_s: float = probe.DEFAULT_STALE_S) -> ThreadingHTTPServer:
    checks = {"/livez": probe.check_live, "/readyz": probe.check_ready}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path in checks:
                ok, why = checks[path](probe.read(health_file), stale_s)
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain; charset=utf-8")
            elif path == "/metrics":
                self._send(200, generate_latest(REGISTRY), "text/plain; version=0.0.4")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # probes every few seconds: no access log
            pass

    server = ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = True
    return server


def serve_in_background(server: ThreadingHTTPServer) -> threading.Thread:
    t = threading.Thread(target=server.serve_forever, name="health-http", daemon=True)
    t.start()
    return t
