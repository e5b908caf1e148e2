"""The cells part of the report (benchmarks/cells.py) and the issue's targets for it."""

from __future__ import annotations


def _f(value, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def details(r: dict) -> str:
    ce = r.get("cells")
    if not ce:
        return ""
    lean, base = ce.get("lean") or {}, ce.get("lean_baseline") or {}
    lines = ["Cells (executor/lean/cell.py):", ""]
    for name, d in (("this checkout", lean), (f"baseline {base.get('checkout', '')}", base)):
        if "print1_paced" not in d:
            lines.append(f"- {name}: {d.get('skipped') or 'not measured'}")
            continue
        lines.append(f"- {name}: `print(1)` paced p50 {_f(d['print1_paced'].get('p50_ms'))} ms, "
                     f"{_f(d['print1_throughput'].get('jobs_per_s'), '{:.1f}')} jobs/s (2 slots); "
                     f"an idle lean session {_f(d.get('idle_session_mb'))} MB host PSS")
    ds = ce.get("data_science") or {}
    for pair, (a, b) in (("dataframe", ("result", "print_shape")), ("chart", ("inline", "file_only"))):
        d = ds.get(pair)
        if d:
            lines.append(f"- {pair}: {a} p50 {_f(d[a].get('p50_ms'))} ms vs {b} {_f(d[b].get('p50_ms'))} ms "
                         f"(delta {_f(d.get('delta_p50_ms'))} ms; in the child {_f(d[a].get('in_child_p50_ms'))} vs "
                         f"{_f(d[b].get('in_child_p50_ms'))} ms; wrong {d.get('wrong')})")
    return "\n".join(lines)


def targets(r: dict, target) -> None:
    ce = r.get("cells")
    if not ce:
        return
    lean, base = ce.get("lean") or {}, ce.get("lean_baseline") or {}
    if "print1_paced" in lean and "print1_paced" in base:
        now, before = lean["print1_paced"].get("p50_ms"), base["print1_paced"].get("p50_ms")
        target("cells: print(1) paced p50 no worse than before cells (ms now / before)", f"{now} / {before}", before,
               now is not None and before is not None and now <= before)
        now, before = lean["print1_throughput"].get("jobs_per_s"), base["print1_throughput"].get("jobs_per_s")
        target("cells: print(1) throughput no worse than before cells (jobs/s now / before)", f"{now} / {before}", before,
               now is not None and before is not None and now >= before)
        now, before = lean.get("idle_session_mb"), base.get("idle_session_mb")
        extra = None if now is None or before is None else round(now - before, 2)
        target("cells: an idle lean session <= 1 MB more host memory than before", extra, 1.0,
               extra is not None and extra <= 1.0)
    ds = ce.get("data_science") or {}
    if ds.get("dataframe"):
        delta = ds["dataframe"].get("delta_p50_ms")
        target("cells: 1,000-row DataFrame result <= 5 ms slower p50 than print(df.shape)", delta, 5,
               delta is not None and delta <= 5)
    if ds.get("chart"):
        delta = ds["chart"].get("delta_p50_ms")
        target("cells: a chart inline no slower than a figure file (p50 delta ms)", delta, 0,
               delta is not None and delta <= 0)
