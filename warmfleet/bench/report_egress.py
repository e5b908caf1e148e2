"""The egress part of the report (warmfleet/bench/egress_calls.py): a session's call beside a job."""

from __future__ import annotations


def _f(value, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def details(r: dict) -> str:
    eg = r.get("egress")
    if not eg:
        return ""
    sg, jg, quiet = eg["session_get"], eg["job_get"], eg["session_call_without_network"]
    return "\n".join([
        "Egress through the pool's proxy (1 pod in gVisor; a loopback site named through the proxy's hosts file):", "",
        f"- one small GET per call, {eg['calls']} calls: in a session p50 {_f(sg['in_call'].get('p50_ms'))} ms inside "
        f"the call (p90 {_f(sg['in_call'].get('p90_ms'))}), {_f(sg.get('p50_ms'))} ms the whole call as the client sees it; "
        f"in a job p50 {_f(jg['in_call'].get('p50_ms'))} ms inside the job, {_f(jg.get('p50_ms'))} ms the whole job",
        f"- a session call that connects nowhere, in the same pool: p50 {_f(quiet.get('p50_ms'))} ms (no usage round trip)",
        f"- 20 MB download: session {eg['session_download_mb_s']} MB/s, job {eg['job_download_mb_s']} MB/s",
    ])
