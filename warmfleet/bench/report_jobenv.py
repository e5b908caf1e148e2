"""The data-science part of the report (warmfleet/bench/jobenv.py): job (a) a pandas
groupby, job (b) a matplotlib chart returned, each way of running them side by side,
the pod's memory with the env preloaded, and the issue's targets for it."""

from __future__ import annotations


def _f(value, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def table(r: dict) -> str:
    je = r.get("jobenv")
    if not je:
        return ""
    rows = [f"Job environment `{je['requirements']}` (preload {', '.join(je['preload'])}); job (a) a 10,000-row "
            "DataFrame groupby/aggregate/print, job (b) a matplotlib chart returned as PNG:", "",
            "| way to run it | (a) p50 / p90 / p99 ms | (a) jobs/s | (b) p50 / p90 / p99 ms | (b) jobs/s |",
            "|---|---|---|---|---|"]

    def row(name: str, a: dict | None, b: dict | None) -> None:
        if not a or not b:
            return
        cells = [f"{_f(d.get('p50_ms'))} / {_f(d.get('p90_ms'))} / {_f(d.get('p99_ms'))} | {_f(d.get('jobs_per_s'), '{:.2f}')}"
                 for d in (a, b)]
        rows.append(f"| {name} | {cells[0]} | {cells[1]} |")

    for key, label in (("warmfleet_preload", "**warmfleet**, env preloaded"), ("warmfleet_no_preload", "warmfleet, no preload")):
        w = je.get(key) or {}
        row(f"{label}, 1 pod x {w.get('slots')} slots in gVisor, paced (a job every {_f(w.get('pace_ms'), '{:.0f}')} ms); "
            f"jobs/s: {(w.get('a') or {}).get('jobs')} jobs via map", w.get("a"), w.get("b"))
    for key, label in (("subprocess", "fresh `python -I -c` on the env per job, no isolation (2 in flight)"),
                       ("cold_sandbox", "fresh `runsc --network=none do python -I -c` per job (cold sandbox; 2 in flight)"),
                       ("celery", "Celery (prefork x2) + `python -I -c` subprocess per job, no isolation")):
        d = je.get(key) or {}
        row(label, d.get("a"), d.get("b"))
    lines = ["\n".join(rows)]
    w = je.get("warmfleet_preload") or {}
    if w.get("a"):
        lines.append(f"- in-child duration p50 with preload: (a) {w['a'].get('in_child_p50_ms')} ms, "
                     f"(b) {(w.get('b') or {}).get('in_child_p50_ms')} ms; pod ready {w.get('ready_s')} s after `up`")
    wn = je.get("warmfleet_no_preload") or {}
    if wn.get("a"):
        lines.append(f"- in-child duration p50 without preload: (a) {wn['a'].get('in_child_p50_ms')} ms, "
                     f"(b) {(wn.get('b') or {}).get('in_child_p50_ms')} ms (memory_mb 1024: the imports map ~0.5 GiB)")
    for key, label in (("warmfleet_preload", "with the env preloaded"), ("warmfleet_no_preload", "without preload")):
        m = (je.get(key) or {}).get("memory")
        if m:
            kinds = ", ".join(f"{k} {v}" for k, v in m.get("by_kind_pss_mb", {}).items())
            lines.append(f"- pod with 2 slots {label}, after the runs: {m['pss_mb']} MB host PSS ({kinds}; RSS {m.get('rss_mb')} MB)")
    for key, label in (("warmfleet_preload", "with the env preloaded"), ("warmfleet_no_preload", "without preload")):
        se = (je.get(key) or {}).get("sessions")
        if se:
            lines.append(f"- a session {label}: open p50 {se['open'].get('p50_ms')} ms; first call `import pandas as pd; "
                         f"pd.DataFrame(...)` p50 {se['first_call'].get('p50_ms')} ms; an idle session that made it "
                         f"{se['idle_per_session_mb']} MB host PSS ({se['idle']} of them)")
    wrong = {k: sum((je.get(k) or {}).get(j, {}).get("wrong", 0) for j in "ab")
             for k in ("warmfleet_preload", "warmfleet_no_preload", "subprocess", "cold_sandbox", "celery")}
    lines.append(f"- wrong outputs: {wrong}")
    if je.get("errors"):
        lines.append(f"- failed: {je['errors']}")
    return "\n".join(lines)


def targets(r: dict, target) -> None:
    """The issue's job-environment targets, through report.targets' `target(name, value, limit, ok)`."""
    je = r.get("jobenv") or {}
    a = (je.get("warmfleet_preload") or {}).get("a") or {}
    sub = ((je.get("subprocess") or {}).get("a") or {}).get("p50_ms")
    cold = ((je.get("cold_sandbox") or {}).get("a") or {}).get("p50_ms")
    celery = ((je.get("celery") or {}).get("a") or {}).get("jobs_per_s")
    p50 = a.get("p50_ms")
    target("job (a) p50 <= 25 ms paced, env preloaded", p50, 25, p50 is not None and p50 <= 25)
    x_sub = round(sub / p50, 1) if sub and p50 else None
    target("job (a) >= 20x faster than a fresh unsandboxed `python -c` (p50)", x_sub, 20, x_sub is not None and x_sub >= 20)
    x_cold = round(cold / p50, 1) if cold and p50 else None
    target("job (a) >= 100x faster than a cold `runsc do` sandbox (p50)", x_cold, 100, x_cold is not None and x_cold >= 100)
    thr = a.get("jobs_per_s")
    x_cel = round(thr / celery, 2) if thr and celery else None
    target("job (a) throughput >= 1.5x Celery + subprocess", x_cel, 1.5, x_cel is not None and x_cel >= 1.5)
