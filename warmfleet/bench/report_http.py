"""The HTTP front door's part of the report (benchmarks/http_e2b.py) and issue 22's
speed lines for it."""

from __future__ import annotations


def _f(value, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def details(r: dict) -> str:
    h = r.get("http")
    if not h:
        return ""
    lean, ds, tr, mem = h["first_result_lean"], h["first_result_data_science"], h["trivial"], h["memory"]
    lines = ["HTTP front door (E2B's own SDK over loopback; the service in its own process):", "",
             f"- Sandbox.create() + run_code('1+1'): p50 {_f(lean['p50_ms'])} ms lean, {_f(ds['p50_ms'])} ms on the "
             f"data-science pool (p90 {_f(lean['p90_ms'])} / {_f(ds['p90_ms'])})",
             f"- trivial run_code on an open sandbox: p50 {_f(tr['run_code']['p50_ms'], '{:.2f}')} ms; a direct "
             f"Session.run in the same run {_f(tr['session_run']['p50_ms'], '{:.2f}')} ms (+{_f(tr['overhead_p50_ms'], '{:.2f}')})",
             f"- the service: {mem['service_idle_rss_mb']} MB RSS idle, {mem['service_rss_mb_with_them']} MB with "
             f"{mem['sandboxes']} idle sandboxes open (+{mem['added_mb']})"]
    thr = h.get("run_code_throughput")
    if thr:
        lines.append(f"- /run_code from {thr['clients']} HTTP clients through one service process: "
                     f"{thr['run_code']['jobs_per_s']} jobs/s; direct AsyncClient {thr['direct']['jobs_per_s']} (x{thr['ratio']})")
    return "\n".join(lines)


def targets(r: dict, target) -> None:
    h = r.get("http")
    if not h:
        return
    lean, ds = h["first_result_lean"]["p50_ms"], h["first_result_data_science"]["p50_ms"]
    target("http: E2B create + run_code p50 <= 100 ms (lean pool)", lean, 100, lean <= 100)
    target("http: E2B create + run_code p50 <= 150 ms (data-science pool)", ds, 150, ds <= 150)
    over = h["trivial"]["overhead_p50_ms"]
    target("http: trivial run_code p50 <= 3 ms above a direct Session.run", over, 3, over <= 3)
    mem = h["memory"]
    target("http: the service idle <= 80 MB RSS", mem["service_idle_rss_mb"], 80, mem["service_idle_rss_mb"] <= 80)
    per_1000 = round(mem["added_mb"] * 1000 / mem["sandboxes"], 1) if mem["sandboxes"] else None
    target(f"http: 1,000 idle sandboxes <= 50 MB more (measured {mem['sandboxes']}, scaled to 1,000)", per_1000, 50,
           per_1000 is not None and per_1000 <= 50)
    thr = h.get("run_code_throughput")
    if thr:
        target("http: /run_code from 64 clients >= 0.9x the direct AsyncClient rate", thr["ratio"], 0.9,
               thr["ratio"] is not None and thr["ratio"] >= 0.9)
