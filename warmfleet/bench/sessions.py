"""Sessions (executor/sessions/host.py) on one local pod in runsc: a trivial call on a warm
session, paced and back-to-back; the host memory an idle session costs; and the pod's
job throughput with and without many idle sessions open beside its slots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from warmfleet.bench.stats import paced_latency
from warmfleet.bench.warm import run_all, pod_memory
from dispatcher import Client
from warmfleet.local.fleet import LocalFleet
from warmfleet.settings import FleetSettings

SLOTS = 2
SETTLE_S = 2.0  # after opening or closing sessions, before weighing the pod (its memory settles)


def run(p: dict, pace_s: float, log: Callable[[str], None]) -> dict:
    idle_n = p["sess_idle"]
    fleet = LocalFleet(FleetSettings(pods=1, slots=SLOTS, sessions=idle_n + 1, drain_timeout_s=20))
    fleet.start(ready_timeout=60)
    try:
        out: dict = {"slots": SLOTS, "capacity": idle_n + 1}
        with Client(fleet.client_url) as c:
            with c.session() as s:
                for _ in range(10):
                    s.run("print(1)")  # warm: compiler, pipes, the pod's Redis connections
                log(f"[bench]   session call latency, paced (a call every {pace_s * 1000:.0f} ms)")
                out["latency_paced"] = {"pace_ms": pace_s * 1000, **paced_latency(lambda: s.run("print(1)"), p["sess_n"], pace_s, "in_session")}
                log("[bench]   session call latency, back-to-back")
                out["latency"] = paced_latency(lambda: s.run("print(1)"), p["sess_n"], 0.0, "in_session")
                t0 = time.perf_counter()
                s.run("import json, re, collections")
                out["first_heavy_call_ms"] = round((time.perf_counter() - t0) * 1000, 2)
            t0 = time.perf_counter()
            with c.session() as s:
                s.run("pass")
            out["open_call_close_ms"] = round((time.perf_counter() - t0) * 1000, 1)

            log(f"[bench]   {idle_n} idle sessions: pod memory, job throughput beside them, then without")
            # Weighed before any job runs: jobs grow a pod (gVisor keeps freed memory a
            # while), which would be charged to the sessions, or lent to them.
            time.sleep(SETTLE_S)  # let the pod's memory settle: a measurement, not synchronisation
            base = pod_memory(fleet)
            sessions = [c.session(idle_timeout=600) for _ in range(idle_n)]
            for i, s in enumerate(sessions):
                s.run(f"x = {i}")  # each has run a call: a warmed interpreter, not a fresh one
            time.sleep(SETTLE_S)
            loaded = pod_memory(fleet)
            thr_with = _throughput(fleet, p["sess_thr"], p["in_flight"])
            alive = sum(s.run("print(x)").stdout == f"{i}\n" for i, s in enumerate(sessions))
            for s in sessions:
                s.close()
            thr_without = _throughput(fleet, p["sess_thr"], p["in_flight"])
        per_session = (loaded["pss_mb"] - base["pss_mb"]) / idle_n if idle_n else None
        out["idle"] = {
            "sessions": idle_n, "still_alive_after": alive, "pod_pss_mb_without": base["pss_mb"],
            "pod_pss_mb_with": loaded["pss_mb"], "per_session_mb": None if per_session is None else round(per_session, 2),
            "host_processes_without": base["processes"], "host_processes_with": loaded["processes"],
        }
        out["throughput"] = {"jobs": p["sess_thr"], "without_sessions": thr_without, "with_idle_sessions": thr_with,
                             "ratio": round(thr_with["jobs_per_s"] / thr_without["jobs_per_s"], 2)
                             if thr_without["jobs_per_s"] else None}
        return out
    finally:
        fleet.stop()


def _throughput(fleet: LocalFleet, n: int, in_flight: int) -> dict:
    wall, results = asyncio.run(run_all(fleet.client_url, [(f"print({i})", {}) for i in range(n)], in_flight))
    ok = sum(getattr(r, "status", None) is not None and r.status.value == "ok" for r in results)
    return {"jobs": n, "ok": ok, "wall_s": round(wall, 3), "jobs_per_s": round(ok / wall, 1) if wall else 0.0}
