"""E2B through the HTTP front door, issue 22's speed lines (one run, this machine):

- time to first result: `Sandbox.create()` then `run_code("1+1")` with E2B's own SDK,
  p50 on a lean pool and on the data-science pool (preloaded sessions);
- a trivial `run_code` on an open sandbox against a direct `Session.run` in the same run
  (the front door's cost: one HTTP round trip, auth, the sandbox record, the stream);
- the service idle (RSS), and with many idle sandboxes open (RSS again: it keeps
  nothing per sandbox in memory; they are records in Redis);
- SandboxFusion's `/run_code` from 64 concurrent HTTP clients through one service
  process against the direct AsyncClient rate (warmfleet.bench.http_throughput).

The service runs as its own process (warmfleet.bench.http_throughput.service_process), as
`warmfleet serve` would; the SDK talks to it over loopback.

    python -m warmfleet.bench.http_e2b [--profile smoke|quick|full]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Callable

from warmfleet.bench import alternatives
from warmfleet.bench.http_throughput import _rss_mb, run_code_throughput, service_process
from dispatcher import Client
from warmfleet.local.fleet import FleetSettings, LocalFleet

DATA_SCIENCE = os.path.join(alternatives.CHECKOUT, "envs", "data-science.txt")
SESSIONS_PER_POD = 250
SETTLE_S = 2.0
PROFILE = {"full": dict(first_n=50, trivial_n=300, idle=1000, thr_n=2000),
           "quick": dict(first_n=20, trivial_n=100, idle=100, thr_n=400),
           "smoke": dict(first_n=3, trivial_n=10, idle=3, thr_n=40)}
CLIENTS = 64  # /run_code throughput: concurrent HTTP clients through one service process


def _ms(samples: list[float]) -> dict:
    s = sorted(samples)
    return {"n": len(s), "p50_ms": round(statistics.median(s) * 1000, 2),
            "p90_ms": round(s[min(len(s) - 1, int(len(s) * 0.9))] * 1000, 2)} if s else {"n": 0}


def _e2b_env(url: str, key: str) -> None:
    os.environ.update(E2B_API_URL=url, E2B_SANDBOX_URL=url, E2B_API_KEY=key)


def first_result(n: int) -> dict:
    """Sandbox.create() + run_code("1+1") as a user's first call; killed after, untimed."""
    from e2b_code_interpreter import Sandbox

    samples, wrong = [], 0
    for _ in range(n + 2):
        t0 = time.perf_counter()
        sbx = Sandbox.create()
        ex = sbx.run_code("1+1")
        dt = time.perf_counter() - t0
        sbx.kill()
        wrong += ex.error is not None
        samples.append(dt)
    return {**_ms(samples[2:]), "wrong": wrong}  # the first two warm the SDK and the service


def trivial_vs_direct(client_url: str, n: int) -> dict:
    from e2b_code_interpreter import Sandbox

    sbx = Sandbox.create()
    try:
        for _ in range(5):
            sbx.run_code("print(1)")
        http = []
        for _ in range(n):
            t0 = time.perf_counter()
            sbx.run_code("print(1)")
            http.append(time.perf_counter() - t0)
    finally:
        sbx.kill()
    direct = []
    with Client(client_url) as c, c.session() as s:
        for _ in range(5):
            s.run("print(1)")
        for _ in range(n):
            t0 = time.perf_counter()
            s.run("print(1)")
            direct.append(time.perf_counter() - t0)
    e2b, plain = _ms(http), _ms(direct)
    return {"run_code": e2b, "session_run": plain, "overhead_p50_ms": round(e2b["p50_ms"] - plain["p50_ms"], 2)}


def idle_memory(proc, n: int, log: Callable[[str], None]) -> dict:
    from e2b_code_interpreter import Sandbox

    time.sleep(SETTLE_S)  # a measurement: let the service's memory settle
    idle = _rss_mb(proc)
    log(f"[bench]   opening {n} idle sandboxes")
    opened = [Sandbox.create(timeout=3600) for _ in range(n)]
    try:
        time.sleep(SETTLE_S)
        loaded = _rss_mb(proc)
    finally:
        for s in opened:
            s.kill()
    return {"service_idle_rss_mb": idle, "sandboxes": n, "service_rss_mb_with_them": loaded,
            "added_mb": round(loaded - idle, 1)}


def _fleet(sessions: int, **extra) -> LocalFleet:
    pods = max(1, math.ceil(sessions / SESSIONS_PER_POD))
    f = LocalFleet(FleetSettings(pods=pods, slots=2, sessions=min(256, math.ceil(sessions / pods)),
                                 drain_timeout_s=30, **extra))
    f.start(ready_timeout=180)
    return f


def run(profile: str, log: Callable[[str], None]) -> dict:
    p = PROFILE[profile]
    out: dict = {}
    saved = {k: os.environ.get(k) for k in ("E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY")}
    try:
        fleet = _fleet(p["idle"] + 4)
        try:
            with service_process(fleet.client_url) as (url, key, proc):
                _e2b_env(url, key)
                log("[bench]   service idle RSS, and with idle sandboxes open")
                out["memory"] = idle_memory(proc, p["idle"], log)
                log(f"[bench]   E2B create + run_code('1+1'), lean pool, {p['first_n']} times")
                out["first_result_lean"] = first_result(p["first_n"])
                log(f"[bench]   trivial run_code vs Session.run, {p['trivial_n']} each")
                out["trivial"] = trivial_vs_direct(fleet.client_url, p["trivial_n"])
            out["run_code_throughput"] = run_code_throughput(fleet, p["thr_n"], CLIENTS, log)
        finally:
            fleet.stop()
        ds = _fleet(4, requirements=DATA_SCIENCE, preload=["numpy", "pandas", "matplotlib.pyplot"])
        try:
            with service_process(ds.client_url) as (url, key, _proc):
                _e2b_env(url, key)
                log(f"[bench]   E2B create + run_code('1+1'), data-science pool, {p['first_n']} times")
                out["first_result_data_science"] = first_result(p["first_n"])
        finally:
            ds.stop()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m warmfleet.bench.http_e2b")
    ap.add_argument("--profile", choices=sorted(PROFILE), default="smoke")
    args = ap.parse_args(argv)
    print(json.dumps(run(args.profile, print), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
