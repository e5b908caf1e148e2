"""Cells (executor/lean/cell.py): what returning values, tables and charts costs.

- print(1) jobs, paced p50 and throughput, on a lean 2-slot fleet: this checkout and,
  with `warmfleet bench --baseline DIR` (a checkout from before cells, e.g. a `git
  worktree` of an earlier commit), the same measurement run from that checkout, in this run;
- an idle lean session's host memory (each session made one call), the same two ways;
- a preloaded data-science job whose last line is a 1,000-row DataFrame (its result:
  text/plain, text/html and the table's JSON) against the same job ending in
  print(df.shape), interleaved on one fleet;
- a chart shown inline (plt.show(): an image output and figure-1.png) against the same
  chart only saved as out/figure-1.png (what a job paid before cells), interleaved.

The lean measurement (`lean`) uses only APIs the baseline checkout has as well: it runs
there as `python -c` with that checkout first on sys.path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

try:
    from warmfleet.bench import stats
except ImportError:  # run from a checkout from before the benchmark was a package (_in_checkout)
    from benchmarks import stats  # type: ignore[no-redef]

PACE_S = 0.05  # as the suite's paced latency
DS_PACE_S = 0.5  # as warmfleet/bench/jobenv.py: a warm data-science fleet at rest
IDLE_SESSIONS = 4
SETTLE_S = 2.0  # before weighing the pod (its memory settles)

DF_SETUP = (
    "import numpy as np, pandas as pd\n"
    "df = pd.DataFrame({'n': np.arange(1000), 'x': np.arange(1000) * 0.5, 's': ['a', 'b'] * 500})\n"
)
DF_RESULT = DF_SETUP + "df"
DF_PRINT = DF_SETUP + "print(df.shape)"
_CHART = (
    "import numpy as np, matplotlib.pyplot as plt\n"
    "x = np.linspace(0, 10, 200)\n"
    "fig, ax = plt.subplots()\n"
    "ax.plot(x, np.sin(x), label='sin'); ax.plot(x, np.cos(x), label='cos'); ax.legend(); ax.set_title('waves')\n"
)
CHART_INLINE = _CHART + "plt.show()\n"
CHART_FILE = _CHART + "import os\nos.makedirs('out', exist_ok=True)\nfig.savefig('out/figure-1.png', format='png')\nplt.close(fig);\n"


def run(p: dict, log: Callable[[str], None], baseline: str | None = None) -> dict:
    out: dict = {}
    log("[bench]   cells: print(1) and an idle lean session, this checkout")
    out["lean"] = lean(p["lat_n"] // 2, p["thr_n"], p["in_flight"], p["sess_idle_cells"])
    if baseline:
        log(f"[bench]   cells: print(1) and an idle lean session, baseline checkout {baseline}")
        out["lean_baseline"] = _in_checkout(baseline, p)
        out["lean_baseline"]["checkout"] = baseline
    else:
        out["lean_baseline"] = {"skipped": "warmfleet bench --baseline CHECKOUT (from before cells) compares"}
    log("[bench]   cells: a DataFrame result vs print(df.shape); a chart inline vs a figure file (preloaded)")
    out["data_science"] = data_science(p["ds_lat"])
    return out


def lean(n_lat: int, n_thr: int, in_flight: int, idle_sessions: int) -> dict:
    """print(1) paced p50 and throughput on a 2-slot lean fleet, then the host memory each
    idle session adds (after one call)."""
    try:
        from warmfleet.bench import warm
    except ImportError:  # a checkout from before the benchmark was a package
        from benchmarks import warm  # type: ignore[no-redef]
    from dispatcher import Client

    with warm.running_fleet(2) as (fleet, _start):
        warm.latency(fleet.client_url, 5, warmup=5)
        paced = warm.latency(fleet.client_url, n_lat, pace_s=PACE_S)
        thr = warm.throughput(fleet, n_thr, in_flight)
        with Client(fleet.client_url) as c:
            time.sleep(SETTLE_S)  # a measurement, not synchronisation
            base = warm.pod_memory(fleet)
            sessions = [c.session(idle_timeout=600) for _ in range(idle_sessions)]
            wrong = sum(s.run("print(1 + 1)").stdout != "2\n" for s in sessions)
            time.sleep(SETTLE_S)
            loaded = warm.pod_memory(fleet)
            for s in sessions:
                s.close()
    return {"print1_paced": {k: paced.get(k) for k in ("p50_ms", "p90_ms", "p99_ms", "n")},
            "print1_throughput": {k: thr.get(k) for k in ("jobs_per_s", "jobs")},
            "idle_session_mb": round((loaded["pss_mb"] - base["pss_mb"]) / idle_sessions, 2),
            "idle_sessions": idle_sessions, "wrong": wrong}


def _in_checkout(checkout: str, p: dict) -> dict:
    """`lean` run from another checkout (its dispatcher, executor and benchmarks), this
    module loaded by path."""
    code = (
        "import importlib.util, json, sys\n"
        f"sys.path[:0] = [{checkout!r}]\n"
        f"spec = importlib.util.spec_from_file_location('cells_bench', {os.path.abspath(__file__)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"print(json.dumps(m.lean({p['lat_n'] // 2}, {p['thr_n']}, {p['in_flight']}, {p['sess_idle_cells']})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=checkout, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"baseline run failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def data_science(n: int) -> dict:
    """A/B pairs on one preloaded 1-slot fleet, interleaved and paced: each job's p50."""
    from warmfleet.bench.jobenv import PRELOAD, REQUIREMENTS
    from dispatcher import Client
    from warmfleet.local.fleet import FleetSettings, LocalFleet
    from warmfleet.local.jobenv import ensure_env

    ensure_env(REQUIREMENTS)
    pairs = {
        "dataframe": (("result", DF_RESULT, _df_result_ok), ("print_shape", DF_PRINT, lambda r: r.stdout == "(1000, 3)\n")),
        "chart": (("inline", CHART_INLINE, _inline_ok), ("file_only", CHART_FILE, lambda r: list(r.files) == ["figure-1.png"])),
    }
    out: dict = {"slots": 1, "pace_ms": DS_PACE_S * 1000}
    fleet = LocalFleet(FleetSettings(pods=1, slots=1, drain_timeout_s=20, requirements=REQUIREMENTS, preload=PRELOAD))
    fleet.start(ready_timeout=180)
    try:
        with Client(fleet.client_url) as c:
            for pair, variants in pairs.items():
                for _, code, _ok in variants:
                    c.run(code)  # the steady state follows
                samples: dict[str, list[float]] = {name: [] for name, _, _ in variants}
                in_child: dict[str, list[float]] = {name: [] for name, _, _ in variants}
                wrong = 0
                for _ in range(n):
                    for name, code, ok in variants:
                        t0 = time.perf_counter()
                        r = c.run(code)
                        samples[name].append(time.perf_counter() - t0)
                        in_child[name].append(r.duration_s)
                        wrong += not (r.ok and ok(r))
                        time.sleep(max(0.0, DS_PACE_S - (time.perf_counter() - t0)))
                (a, *_), (b, *_) = variants
                res = {name: {**stats.summarize_ms(samples[name]), "in_child_p50_ms": stats.summarize_ms(in_child[name]).get("p50_ms")}
                       for name in samples}
                res["delta_p50_ms"] = round(res[a]["p50_ms"] - res[b]["p50_ms"], 2)
                res["wrong"] = wrong
                out[pair] = res
    finally:
        fleet.stop()
    return out


def _df_result_ok(r) -> bool:
    data = r.outputs[0]["data"] if r.outputs else {}
    return "[1000 rows x 3 columns]" in (r.text or "") and "<table" in data.get("text/html", "") and \
        "application/vnd.warmfleet.table+json" in data


def _inline_ok(r) -> bool:
    return list(r.files) == ["figure-1.png"] and len(r.outputs) == 1 and "image/png" in r.outputs[0]["data"]
