"""One benchmark run: every measurement, in a fixed order, on one machine; returns
one JSON-able dict. Profiles size each part (full ~6-10 min, quick ~1-2 min, smoke
for the test that checks the harness)."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable

from warmfleet.bench import alternatives, cells, egress_calls, jobenv, platforms, sessions, warm
from warmfleet.settings import DEFAULT_PLATFORM
from warmfleet.settings import env_name

HUMANEVAL_WORKERS = 2  # as many as the fleet's slots it is compared with
PACE_S = 0.05  # paced latency: one job every 50 ms, slower than a slot's fork+set-up
PROFILES: dict[str, dict] = {
    "full": dict(lat_n=500, thr_n=2000, in_flight=64, slots=[1, 2, 4], mixed_n=400, cold_seq=30, cold_par=40,
                 sub_seq=300, sub_par=600, celery_seq=300, celery_par=2000, he_checks=164, ceiling_s=5.0,
                 plat_lat_n=200, plat_thr_n=1000, ds_lat=40, ds_thr=60, ds_slow=6, ds_sub_seq=10, ds_sub_par=20, ds_cold=5,
                 sess_n=300, sess_idle=32, sess_thr=1000, egress_n=50, sess_idle_cells=8),
    "quick": dict(lat_n=150, thr_n=400, in_flight=64, slots=[1, 2, 4], mixed_n=100, cold_seq=10, cold_par=10,
                  sub_seq=80, sub_par=150, celery_seq=80, celery_par=400, he_checks=164, ceiling_s=2.0,
                  plat_lat_n=40, plat_thr_n=200, ds_lat=20, ds_thr=30, ds_slow=3, ds_sub_seq=5, ds_sub_par=10, ds_cold=3,
                  sess_n=100, sess_idle=32, sess_thr=300, egress_n=20, sess_idle_cells=4),
    "smoke": dict(lat_n=20, thr_n=40, in_flight=16, slots=[1], mixed_n=12, cold_seq=2, cold_par=2,
                  sub_seq=5, sub_par=6, celery_seq=5, celery_par=16, he_checks=8, ceiling_s=0.5,
                  plat_lat_n=6, plat_thr_n=10, ds_lat=2, ds_thr=3, ds_slow=1, ds_sub_seq=1, ds_sub_par=2, ds_cold=1,
                  sess_n=10, sess_idle=2, sess_thr=20, egress_n=3, sess_idle_cells=2),
}


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    redis_v = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gb": round(mem_gb, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": sys.version.split()[0],
        "redis": next((w.split("=", 1)[1] for w in redis_v if w.startswith("v=")), "?"),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            return next((line.split("=", 1)[1].strip().strip('"') for line in f if line.startswith("PRETTY_NAME")), "")
    except OSError:
        return platform.system()


def run(profile: str = "full", only: set[str] | None = None, log: Callable[[str], None] = print,
        baseline: str | None = None) -> dict:
    """`baseline`: a checkout whose print(1) jobs and idle sessions the cells part measures too."""
    p = PROFILES[profile]
    cores = os.cpu_count() or 2
    report: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "profile": profile,
        "machine": machine(),
        "errors": {},
    }
    # A private discovery directory: never overwrite the URL of a developer's `warmfleet up`.
    state_dir = env_name("state_dir")
    saved_state_dir = os.environ.get(state_dir)
    os.environ[state_dir] = tempfile.mkdtemp(prefix="warmfleet-bench-state-")

    def part(name: str, fn: Callable[[], object]) -> None:
        if only and name not in only:
            return
        log(f"[bench] {name} ...")
        t0 = time.perf_counter()
        try:
            report[name] = fn()
        except Exception as exc:  # noqa: BLE001 - one failing alternative must not lose the others
            report["errors"][name] = f"{type(exc).__name__}: {exc}"
            log(traceback.format_exc())
        log(f"[bench] {name} done in {time.perf_counter() - t0:.1f} s")

    part("ceiling", lambda: alternatives.sandbox_ceiling(p["ceiling_s"], cores))
    part("warmfleet", lambda: _warmfleet(p, log))
    part("cold_sandbox", lambda: alternatives.cold_sandbox(p["cold_seq"], p["cold_par"], cores))
    part("subprocess", lambda: alternatives.fresh_subprocess(p["sub_seq"], p["sub_par"], cores))
    part("celery", lambda: alternatives.celery_worker(p["celery_seq"], p["celery_par"], p["in_flight"]))
    part("humaneval", lambda: alternatives.humaneval_harness(p["he_checks"], HUMANEVAL_WORKERS))
    part("platforms", lambda: platforms.side_by_side(p, cores, PACE_S, log))
    part("jobenv", lambda: jobenv.run(p, cores, log))
    part("sessions", lambda: sessions.run(p, PACE_S, log))
    part("egress", lambda: egress_calls.run(p, log))
    part("cells", lambda: cells.run(p, log, baseline))
    if (report.get("jobenv") or {}).get("errors"):
        report["errors"]["jobenv"] = report["jobenv"]["errors"]
    shutil.rmtree(os.environ.pop(state_dir), ignore_errors=True)
    if saved_state_dir is not None:
        os.environ[state_dir] = saved_state_dir
    return report


def _warmfleet(p: dict, log: Callable[[str], None]) -> dict:
    """One fleet per slot count, on the default platform: pod start, idle memory,
    sequential latency, then throughput; the mixed workload and HumanEval on the 2-slot
    fleet (1-slot in the smoke profile), whose latency is the one checked against the targets."""
    out: dict = {"platform": DEFAULT_PLATFORM, "pod_start": {}, "memory": {}, "throughput": {}, "latency_by_slots": {}}
    lat_slots = 2 if 2 in p["slots"] else p["slots"][0]
    for slots in p["slots"]:
        with warm.running_fleet(slots) as (fleet, start):
            out["pod_start"][str(slots)] = start
            warm.latency(fleet.client_url, 5, warmup=5)  # every slot has run a job; spares are up
            out["memory"][str(slots)] = warm.pod_memory(fleet)
            log(f"[bench]   latency, {slots} slot(s)")
            lat = {"slots": slots, **warm.latency(fleet.client_url, p["lat_n"])}
            out["latency_by_slots"][str(slots)] = lat
            if slots == lat_slots:
                out["latency"] = lat
                log(f"[bench]   paced latency (a job every {PACE_S * 1000:.0f} ms), {slots} slot(s)")
                out["latency_paced"] = {"slots": slots, "pace_ms": PACE_S * 1000,
                                        **warm.latency(fleet.client_url, p["lat_n"] // 2, pace_s=PACE_S)}
                log(f"[bench]   mixed workload, {slots} slot(s)")
                out["mixed"] = {"slots": slots, **warm.mixed(fleet.client_url, p["mixed_n"], p["in_flight"])}
                log(f"[bench]   HumanEval's canonical solutions, {slots} slot(s)")
                out["humaneval"] = {"slots": slots, **warm.humaneval_suite(fleet.client_url, p["he_checks"], p["in_flight"])}
            log(f"[bench]   throughput, {slots} slot(s)")
            out["throughput"][str(slots)] = warm.throughput(fleet, p["thr_n"], p["in_flight"])
    return out
