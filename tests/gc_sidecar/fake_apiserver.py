"""A local HTTP server that answers the Eviction API like kube-apiserver does, so the
real `kubernetes` client is exercised end to end (no patching)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def status_body(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Success" if code < 300 else "Failure", "message": message, "reason": reason, "code": code}


class FakeApiServer:
    """Answers POST .../pods/{name}/eviction with the next scripted status code."""

    def __init__(self, codes: list[int], observe=None) -> None:
        self.codes = list(codes)
        self.requests: list[tuple[str, str, dict]] = []
        self.observe = observe  # called at each request: what the test wants to know at that moment
        self.observed: list = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                outer.requests.append(("POST", self.path, body))
                if outer.observe is not None:
                    outer.observed.append(outer.observe())
                code = outer.codes.pop(0) if outer.codes else 201
                reason, message = {
                    201: ("", ""),
                    429: ("TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget."),
                    404: ("NotFound", 'pods "x" not found'),
                    403: ("Forbidden", "pods/eviction is forbidden"),
                }[code]
                data = json.dumps(status_body(code, reason, message)).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeApiServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
