"""Each gVisor platform this runsc offers, side by side on this machine: the sandbox's
fork ceiling and a 2-slot warmfleet pod's latency and throughput on it. A platform that
cannot start a sandbox here (KVM without nested virtualisation hangs) is reported with
why, not measured."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from warmfleet.bench import alternatives, procs, warm
from warmfleet.local import runsc
from warmfleet.settings import DEFAULT_PLATFORM

PROBE_TIMEOUT_S = 10.0
SLOTS = 2


def probe(info: runsc.RunscInfo, platform: str) -> str | None:
    """None if `runsc --platform=P do true` works here within the time-out, else why not."""
    if platform == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "no usable /dev/kvm"
    root = tempfile.mkdtemp(prefix="warmfleet-bench-runsc-")
    proc = subprocess.Popen([info.path, "--root", root, "--network=none", f"--platform={platform}", "do", "/bin/true"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=PROBE_TIMEOUT_S)
        return None if proc.returncode == 0 else f"exit {proc.returncode}: {err.decode(errors='replace')[-300:]}"
    except subprocess.TimeoutExpired:
        procs.stop_group(proc, 1.0)
        subprocess.run([info.path, "--root", root, "delete", "--force", "--all"], capture_output=True, timeout=30)
        return f"a sandbox did not finish `true` within {PROBE_TIMEOUT_S:.0f} s (hangs)"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def side_by_side(p: dict, cores: int, pace_s: float, log: Callable[[str], None]) -> dict:
    info = runsc.inspect()
    with ThreadPoolExecutor(len(info.platforms)) as pool:  # a hanging probe costs its time-out once
        why_not = dict(zip(info.platforms, pool.map(lambda pl: probe(info, pl), info.platforms)))
    out: dict = {"runsc": info.version, "default": DEFAULT_PLATFORM, "build_default": info.default_platform,
                 "platforms": {}}
    for platform in sorted(info.platforms, key=lambda pl: pl != DEFAULT_PLATFORM):
        if why_not[platform]:
            out["platforms"][platform] = {"available": False, "why": why_not[platform]}
            continue
        log(f"[bench]   platform {platform}")
        res: dict = {"available": True,
                     "ceiling": alternatives.sandbox_ceiling(min(p["ceiling_s"], 2.0), cores, platform)}
        with warm.running_fleet(SLOTS, platform) as (fleet, start):
            res["pod_start"] = start
            warm.latency(fleet.client_url, 5, warmup=5)
            res["latency"] = warm.latency(fleet.client_url, p["plat_lat_n"])
            res["latency_paced"] = warm.latency(fleet.client_url, p["plat_lat_n"] // 2, pace_s=pace_s)
            res["throughput"] = warm.throughput(fleet, p["plat_thr_n"], p["in_flight"])
        out["platforms"][platform] = res
    return out
