"""Ending a helper process `warmfleet up` started itself (Redis, the egress proxy)."""

from __future__ import annotations

import signal
import subprocess


def terminate(proc: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL: by its Popen, so only our own child."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
