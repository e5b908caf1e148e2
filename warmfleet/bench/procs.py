"""Host processes the benchmark starts: their memory, and stopping them by pid."""

from __future__ import annotations

import os
import signal
import subprocess

import psutil


def processes_with_arg(marker: str) -> list[psutil.Process]:
    """Every process whose command line contains marker (a private runsc --root), and
    all their descendants: for a sandbox that is the Sentry, the gofer and the ptrace
    stubs, which hold the address spaces of the processes inside."""
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        if any(marker in arg for arg in (p.info["cmdline"] or [])):
            found[p.pid] = p
            try:
                for child in p.children(recursive=True):
                    found[child.pid] = child
            except psutil.NoSuchProcess:
                pass
    return list(found.values())


def pss_mb(procs: list[psutil.Process]) -> dict:
    """Proportional set size (shared pages split between their users) summed, in MB,
    and the process count. PSS is what the host really gives these processes."""
    total_pss = total_rss = 0
    counted = 0
    for p in procs:
        try:
            m = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total_pss += m.pss
        total_rss += m.rss
        counted += 1
    return {"pss_mb": round(total_pss / 2**20, 1), "rss_mb": round(total_rss / 2**20, 1), "processes": counted}


def stop_group(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a process we started in its own session (start_new_session=True), and
    everything it started, through its process group id (= its pid)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:  # whatever is left of the group (the leader may be gone already)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(10)
