"""The sessions part of the report (warmfleet/bench/sessions.py) and the issue's targets for it."""

from __future__ import annotations


def _f(value, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def details(r: dict) -> str:
    se = r.get("sessions")
    if not se:
        return ""
    paced, b2b, idle, thr = se["latency_paced"], se["latency"], se["idle"], se["throughput"]
    return "\n".join([
        f"Sessions (1 pod in gVisor, {se['slots']} slots, room for {se['capacity']} sessions):", "",
        f"- trivial call `print(1)` on a warm session, paced (one every {_f(paced['pace_ms'], '{:.0f}')} ms): "
        f"p50 {_f(paced['p50_ms'], '{:.2f}')} ms, p90 {_f(paced['p90_ms'], '{:.2f}')}, p99 {_f(paced['p99_ms'], '{:.2f}')} "
        f"(in the session: p50 {_f(paced['in_session']['p50_ms'], '{:.2f}')} ms)",
        f"- the same back-to-back: p50 {_f(b2b['p50_ms'], '{:.2f}')} ms, p99 {_f(b2b['p99_ms'], '{:.2f}')} ms",
        f"- open + one call + close: {_f(se['open_call_close_ms'])} ms",
        f"- {idle['sessions']} idle sessions: pod {idle['pod_pss_mb_without']} -> {idle['pod_pss_mb_with']} MB host PSS "
        f"({_f(idle['per_session_mb'], '{:.2f}')} MB each; host processes {idle['host_processes_without']} -> "
        f"{idle['host_processes_with']}); {idle['still_alive_after']} of them still had their globals after the jobs below",
        f"- jobs beside them ({thr['jobs']} `print(i)`, 64 in flight): {thr['without_sessions']['jobs_per_s']} jobs/s "
        f"without sessions, {thr['with_idle_sessions']['jobs_per_s']} with {idle['sessions']} idle (x{_f(thr['ratio'], '{:.2f}')})",
    ])


def targets(r: dict, target) -> None:
    se = r.get("sessions")
    if not se:
        return
    p50 = se["latency_paced"]["p50_ms"]
    target("session: trivial call on a warm session p50 <= 3 ms (paced)", p50, 3, p50 <= 3)
    per = se["idle"]["per_session_mb"]
    target("session: an idle session <= 10 MB host memory", per, 10, per is not None and per <= 10)
    idle, ratio = se["idle"], se["throughput"]["ratio"]
    holds = idle["sessions"] >= 32 and idle["still_alive_after"] == idle["sessions"] and ratio is not None and ratio >= 0.9
    target(f"session: {idle['sessions']} idle sessions on one pod, jobs at >= 90% of their rate without", ratio, 0.9,
           holds)
