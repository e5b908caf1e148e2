"""Data-science jobs on the example job environment (envs/data-science.txt): job (a)
builds a 10,000-row DataFrame from numpy, groups, aggregates and prints a summary; job
(b) draws a matplotlib chart and returns it as PNG. Each is measured as warmfleet with
the env preloaded, warmfleet without preload, a fresh unsandboxed `python -c` on the same
env, a cold `runsc do` sandbox per job and Celery + subprocess; plus the host memory of
a pod holding the preloaded env; and a session's open, its first pandas call and the
host memory of an idle session that made it, with and without preload."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator

from warmfleet.bench import alternatives
from warmfleet.bench.stats import summarize_ms
from warmfleet.bench.warm import pod_memory
from dispatcher import Client
from warmfleet.local.fleet import LocalFleet
from warmfleet.settings import FleetSettings
from warmfleet.local.jobenv import ensure_env

REQUIREMENTS = os.path.join(alternatives.CHECKOUT, "envs", "data-science.txt")
PRELOAD = ["numpy", "pandas", "matplotlib.pyplot"]
PACE_S = 0.5  # paced: a warm fleet at rest (the spare is forked and warmed between jobs)
NO_PRELOAD_MEMORY_MB = 1024  # importing numpy+pandas+matplotlib maps ~0.5 GiB

JOB_A = (
    "import numpy as np, pandas as pd\n"
    "n = 10_000\n"
    "df = pd.DataFrame({'g': np.arange(n) % 20, 'x': np.arange(n) * 0.5, 'y': (np.arange(n) % 7).astype(float)})\n"
    "s = df.groupby('g').agg(x_mean=('x', 'mean'), y_sum=('y', 'sum'), n=('x', 'size'))\n"
    "print(len(s), int(s['n'].sum()), round(float(s['x_mean'].mean()), 3), float(s['y_sum'].sum()))\n"
)
# What job (a) prints, computed by the stdlib the same way.
A_OUT = f"20 10000 {round(sum(i * 0.5 for i in range(10_000)) / 10_000, 3)} {float(sum(i % 7 for i in range(10_000)))}\n"

_CHART = (
    "import numpy as np, matplotlib.pyplot as plt\n"
    "x = np.linspace(0, 10, 200)\n"
    "fig, ax = plt.subplots()\n"
    "ax.plot(x, np.sin(x), label='sin'); ax.plot(x, np.cos(x), label='cos'); ax.legend(); ax.set_title('waves')\n"
)
JOB_B = _CHART + "plt.show()\n"  # warmfleet returns it as out/figure-1.png
# The same chart returned by the alternatives: PNG bytes on stdout's behalf (their length).
JOB_B_ALT = "import matplotlib; matplotlib.use('Agg')\n" + _CHART + (
    "import io; buf = io.BytesIO(); fig.savefig(buf, format='png'); png = buf.getvalue()\n"
    "print(png[:8] == b'\\x89PNG\\r\\n\\x1a\\n' and len(png) > 1000)\n"
)
B_OUT = "True\n"
SESSION_FIRST_CALL = "import pandas as pd\nprint(pd.DataFrame({'a': [1]}).a.sum())"
SESSIONS_IDLE = 4  # the fleet's default session capacity
SETTLE_S = 2.0  # before weighing the pod (its memory settles)


def run(p: dict, cores: int, log: Callable[[str], None]) -> dict:
    env = ensure_env(REQUIREMENTS, FleetSettings().env_cache, log=log)  # where the fleet below looks
    out: dict = {"requirements": os.path.relpath(REQUIREMENTS, alternatives.CHECKOUT), "preload": PRELOAD, "env": env.root}
    log("[bench]   job env: warmfleet with preload")
    out["warmfleet_preload"] = _guarded(out, "warmfleet_preload", lambda: _warmfleet(p["ds_lat"], p["ds_thr"], preload=PRELOAD))
    log("[bench]   job env: warmfleet without preload")
    out["warmfleet_no_preload"] = _guarded(out, "warmfleet_no_preload", lambda: _warmfleet(
        p["ds_slow"], p["ds_slow"], preload=[], memory_mb=NO_PRELOAD_MEMORY_MB))
    log("[bench]   job env: fresh python -c")
    out["subprocess"] = _guarded(out, "subprocess", lambda: {
        name: _subprocess(env.python, code, ok, p["ds_sub_seq"], p["ds_sub_par"], cores) for name, code, ok in _alt_jobs()})
    log("[bench]   job env: cold runsc do")
    out["cold_sandbox"] = _guarded(out, "cold_sandbox", lambda: {
        name: _cold(env.python, code, ok, p["ds_cold"], p["ds_cold"], cores) for name, code, ok in _alt_jobs()})
    log("[bench]   job env: Celery + subprocess")
    out["celery"] = _guarded(out, "celery", lambda: alternatives.celery_worker(
        p["ds_sub_seq"], p["ds_sub_par"], p["in_flight"], python=env.python,
        jobs={name: (code, ok) for name, code, ok in _alt_jobs()}))
    return out


def _guarded(out: dict, name: str, fn: Callable[[], dict]) -> dict:
    """One way of running the jobs failing must not lose the others: its error is kept."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001
        out.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
        return {}


def _alt_jobs() -> list[tuple[str, str, Callable[[str], bool]]]:
    return [("a", JOB_A, lambda s: s == A_OUT), ("b", JOB_B_ALT, lambda s: s == B_OUT)]


@contextlib.contextmanager
def _fleet(preload: list[str], slots: int = 2) -> Iterator[tuple[LocalFleet, float]]:
    fleet = LocalFleet(FleetSettings(pods=1, slots=slots, drain_timeout_s=20, requirements=REQUIREMENTS, preload=preload))
    t0 = time.perf_counter()
    try:
        fleet.start(ready_timeout=180)
        yield fleet, time.perf_counter() - t0
    finally:
        fleet.stop()


def _warmfleet(n_lat: int, n_thr: int, preload: list[str], memory_mb: int | None = None) -> dict:
    budgets = {"memory_mb": memory_mb, "timeout": 60, "cpu_time": 30} if memory_mb else {}
    checks = {"a": (JOB_A, lambda r: r.stdout == A_OUT), "b": (JOB_B, lambda r: list(r.files) == ["figure-1.png"])}
    res: dict = {"slots": 2, "pace_ms": PACE_S * 1000}
    with _fleet(preload) as (fleet, ready_s), Client(fleet.client_url) as c:
        res["ready_s"] = round(ready_s, 2)
        for name, (code, ok) in checks.items():
            for _ in range(2):  # every slot has run one: what follows is the steady state
                c.run(code, **budgets)
            samples, in_child, wrong = [], [], 0
            for _ in range(n_lat):
                t0 = time.perf_counter()
                r = c.run(code, **budgets)
                samples.append(time.perf_counter() - t0)
                in_child.append(r.duration_s)
                wrong += not (r.ok and ok(r))
                time.sleep(max(0.0, PACE_S - (time.perf_counter() - t0)))
            t0 = time.perf_counter()
            results = c.map([code] * n_thr, **budgets)
            wall = time.perf_counter() - t0
            wrong += sum(not (r.ok and ok(r)) for r in results)
            res[name] = {**summarize_ms(samples), "in_child_p50_ms": summarize_ms(in_child).get("p50_ms"),
                         "jobs": n_thr, "jobs_per_s": round(n_thr / wall, 2), "wrong": wrong}
        res["memory"] = pod_memory(fleet)
        res["sessions"] = _sessions(c, fleet, min(n_lat, 10), budgets)
    return res


def _sessions(c: Client, fleet: LocalFleet, n: int, budgets: dict) -> dict:
    """A fresh session's open and its first pandas call (preloaded: forked from a zygote
    that imported it), then the host memory of idle sessions that made that call."""
    opens, firsts, wrong = [], [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        with c.session() as s:
            t1 = time.perf_counter()
            wrong += s.run(SESSION_FIRST_CALL, **budgets).stdout != "1\n"
            firsts.append(time.perf_counter() - t1)
        opens.append(t1 - t0)
    time.sleep(SETTLE_S)  # a measurement, not synchronisation
    base = pod_memory(fleet)
    idle = [c.session(idle_timeout=600) for _ in range(SESSIONS_IDLE)]
    wrong += sum(s.run(SESSION_FIRST_CALL, **budgets).stdout != "1\n" for s in idle)
    time.sleep(SETTLE_S)
    loaded = pod_memory(fleet)
    for s in idle:
        s.close()
    return {"open": summarize_ms(opens), "first_call": summarize_ms(firsts), "wrong": wrong, "idle": SESSIONS_IDLE,
            "idle_per_session_mb": round((loaded["pss_mb"] - base["pss_mb"]) / SESSIONS_IDLE, 2)}


def _subprocess(python: str, code: str, ok, n_seq: int, n_par: int, parallel: int) -> dict:
    argv = [python, "-I", "-c", code]

    def one() -> bool:
        out = alternatives._run(argv, 60)  # noqa: SLF001 - the same process discipline as the print(1) runs
        return out.returncode == 0 and ok(out.stdout.decode())

    return alternatives._sequential_and_parallel(one, n_seq, n_par, parallel)  # noqa: SLF001


def _cold(python: str, code: str, ok, n_seq: int, n_par: int, parallel: int) -> dict:
    root = tempfile.mkdtemp(prefix="warmfleet-bench-runsc-")
    argv = [alternatives._runsc(), "--root", root, "--network=none", "do", python, "-I", "-c", code]  # noqa: SLF001
    try:
        return _subprocess_argv(argv, ok, n_seq, n_par, parallel)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _subprocess_argv(argv: list[str], ok, n_seq: int, n_par: int, parallel: int) -> dict:
    def one() -> bool:
        out = alternatives._run(argv, 120)  # noqa: SLF001
        return out.returncode == 0 and ok(out.stdout.decode())

    return alternatives._sequential_and_parallel(one, n_seq, n_par, parallel)  # noqa: SLF001
