"""Egress through a pool's proxy, a session's call beside a job (one local pod in runsc):
a small GET through the session's relay (the supervisor's, in the session's namespace)
and through a job's own relay thread, timed inside the call and as the client sees the
call; and a 20 MB download each way. The site is an HTTP server on this host's loopback,
named through a hosts file the proxy reads: nothing leaves the machine."""

from __future__ import annotations

import http.server
import os
import tempfile
import threading
import time
from collections.abc import Callable

from warmfleet.bench.stats import summarize_ms
from dispatcher import Client
from warmfleet.local.fleet import LocalFleet
from warmfleet.settings import FleetSettings

POOL = "bench-egress"
NAME = "site.bench"
BIG = 20_000_000
GET = ("import time, urllib.request\nt = time.perf_counter()\n"
       "urllib.request.urlopen('http://{name}:{port}/', timeout=30).read()\nprint(time.perf_counter() - t)\n")
DOWNLOAD = ("import time, urllib.request\nt = time.perf_counter()\n"
            "n = len(urllib.request.urlopen('http://{name}:{port}/big', timeout=120).read())\n"
            "print(n / (time.perf_counter() - t) / 1e6)\n")


class _Site(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        data = b"x" * BIG if self.path == "/big" else b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def run(p: dict, log: Callable[[str], None]) -> dict:
    n = p["egress_n"]
    site = _Site(("127.0.0.1", 0), _Handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    port = site.server_address[1]
    workdir = tempfile.mkdtemp(prefix="warmfleet-bench-egress-")
    hosts = os.path.join(workdir, "hosts")
    with open(hosts, "w") as f:
        f.write(f"127.0.0.1 {NAME}\n")
    fleet = LocalFleet(FleetSettings(pods=1, slots=1, sessions=1, pool=POOL, drain_timeout_s=20,
                                     egress_allow=f"{NAME}:{port},127.0.0.1:{port}", egress_hosts_file=hosts))
    fleet.start(ready_timeout=60)
    get, download = GET.format(name=NAME, port=port), DOWNLOAD.format(name=NAME, port=port)
    try:
        out: dict = {"calls": n}
        with Client(fleet.client_url, pool=POOL) as c:
            with c.session() as s:
                log(f"[bench]   {n} session calls of one small GET each")
                s.run(get, timeout=30)  # warm: the relay's listener, the proxy's first connection
                out["session_get"] = _calls(lambda: s.run(get, timeout=30), n)
                out["session_call_without_network"] = _calls(lambda: s.run("pass"), n, inner=False)
                out["session_download_mb_s"] = [_mb_s(s.run(download, timeout=120, memory_mb=512)) for _ in range(3)]
            log(f"[bench]   {n} jobs of one small GET each")
            c.run(get, timeout=30)
            out["job_get"] = _calls(lambda: c.run(get, timeout=30), n)
            out["job_download_mb_s"] = [_mb_s(c.run(download, timeout=120, memory_mb=512)) for _ in range(3)]
        return out
    finally:
        fleet.stop()
        site.shutdown()


def _calls(call: Callable, n: int, inner: bool = True) -> dict:
    outer, in_call, bad = [], [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        r = call()
        outer.append(time.perf_counter() - t0)
        ok = r.status.value == "ok" and r.egress is not None
        if inner:
            ok = ok and r.egress.connections == 1
            if ok:
                in_call.append(float(r.stdout))
        bad += not ok
    return {**summarize_ms(outer), **({"in_call": summarize_ms(in_call)} if inner else {}), "wrong": bad}


def _mb_s(r) -> float | None:
    return round(float(r.stdout), 1) if r.status.value == "ok" else None
