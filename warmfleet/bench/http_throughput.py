"""`/run_code` throughput through the HTTP service (SandboxFusion's route) against the
direct AsyncClient rate on the same fleet, issue 22's line: "from 64 concurrent HTTP
clients through one service process: at least 0.9x the direct AsyncClient rate".

The service runs as its own process (uvicorn, one worker), as `warmfleet serve` would;
64 HTTP connections each send one request after another. The direct rate is the same
jobs with 64 in flight from one AsyncClient, measured just before, on the same fleet.

    python -m warmfleet.bench.http_throughput [--jobs N] [--clients 64]   # its own 2-slot fleet
    run_code_throughput(fleet, n, clients, log)                      # on a running fleet
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import psutil

from warmfleet.bench.warm import run_all
from warmfleet.http.settings import HttpSettings
from warmfleet.settings import to_env

START_TIMEOUT_S = 30.0
TENANT = "bench"


def run_code_throughput(fleet, n: int, clients: int = 64, log: Callable[[str], None] = print) -> dict:
    """Both rates on `fleet` (a running LocalFleet), direct first; and the service's RSS."""
    log(f"[bench]   direct AsyncClient, {n} jobs, {clients} in flight")
    direct = _rate(*asyncio.run(run_all(fleet.client_url, [(f"print({i})", {}) for i in range(n)], clients)))
    with service_process(fleet.client_url) as (url, key, proc):
        idle_rss = _rss_mb(proc)
        log(f"[bench]   POST /run_code, {n} requests from {clients} HTTP clients, one service process")
        wall, answers = asyncio.run(_post_all(url, key, n, clients))
        over_http = _rate(wall, answers)
        rss_after = _rss_mb(proc)
    ratio = round(over_http["jobs_per_s"] / direct["jobs_per_s"], 2) if direct["jobs_per_s"] else None
    return {"jobs": n, "clients": clients, "direct": direct, "run_code": over_http, "ratio": ratio,
            "target_ratio": 0.9, "service_rss_mb": {"idle": idle_rss, "after": rss_after}}


def _rate(wall: float, results: list) -> dict:
    ok = sum(_ok(r) for r in results)
    out = {"ok": ok, "wall_s": round(wall, 3), "jobs_per_s": round(ok / wall, 1) if wall else 0.0}
    if ok < len(results):  # what the others answered, a few of them: a bench that loses jobs says how
        out["not_ok"] = [_brief(r) for r in results if not _ok(r)][:3]
    return out


def _brief(r) -> str:
    if isinstance(r, dict):
        return f"{r.get('status')}: {r.get('message') or r}"[:300]
    return f"{getattr(r, 'status', type(r).__name__)}: {getattr(r, 'error', r)}"[:300]


def _ok(r) -> bool:
    if isinstance(r, dict):  # a /run_code answer
        return r.get("status") == "Success"
    return getattr(r, "status", None) is not None and r.status.value == "ok"


async def _post_all(url: str, key: str, n: int, clients: int) -> tuple[float, list]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-KEY": key}, limits=limits, timeout=120) as http:
        await http.post("/run_code", json={"code": "print(1)", "language": "python"})  # warm: connections, clients
        queue = iter(range(n))
        answers: list = []

        async def client() -> None:
            for i in queue:  # each of the `clients` tasks takes the next request when its last one answered
                try:
                    resp = await http.post("/run_code", json={"code": f"print({i})", "language": "python"})
                    answers.append(resp.json())
                except Exception as exc:  # noqa: BLE001 - a failed request counts as not completed
                    answers.append(exc)

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - t0, answers


@contextlib.contextmanager
def service_process(redis_url: str, pools: str = "default") -> Iterator[tuple[str, str, subprocess.Popen]]:
    """The service under uvicorn in a process of its own on a free loopback port, with a
    tenant made for it; yields (base URL, key, process)."""
    from warmfleet.http.tenants import Tenant, TenantStore
    from warmfleet.plumbing import redis_connect

    redis = redis_connect.connect(redis_url, decode_responses=True)
    try:
        key = TenantStore(redis).add(Tenant(name=TENANT, pools=pools.split(",")))
    finally:
        redis.close()
    port = _free_port()
    env = {**os.environ, **to_env(HttpSettings.from_values(redis_url=redis_url, http_pools=pools.split(",")))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "warmfleet.http.app:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log", "--loop", "asyncio"],
        env=env, stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # poll /healthz with a deadline: the readiness signal
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited with {proc.returncode}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not answer /healthz")
            time.sleep(0.05)
        yield url, key, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rss_mb(proc: subprocess.Popen) -> float:
    return round(psutil.Process(proc.pid).memory_info().rss / 2**20, 1)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    from warmfleet.local.fleet import FleetSettings, LocalFleet

    parser = argparse.ArgumentParser(prog="python -m warmfleet.bench.http_throughput")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--quick", action="store_const", dest="jobs", const=200, help="200 jobs")
    args = parser.parse_args(argv)
    fleet = LocalFleet(FleetSettings(pods=1, slots=args.slots, drain_timeout_s=10))
    fleet.start(ready_timeout=60)
    try:
        out = run_code_throughput(fleet, args.jobs, args.clients, lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        fleet.stop()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
