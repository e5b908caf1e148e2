"""What /proc says about the processes of one uid: which are alive, and how much CPU
they used. Stdlib only (the lean runner and the job child import it).

Two uses: confirming that nothing of a finished job still runs, and a job-wide CPU
budget. RLIMIT_CPU is per process, and inside gVisor it is not even enforced on a
job's forked descendants (checked: a forked `while True: pass` ran to the wall clock),
so the runner sums CPU over the whole uid instead.
"""

from __future__ import annotations

import os

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: str) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # Fields after the ")" closing the command name: state is [0], utime [11], stime [12].
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None  # gone meanwhile


def _pids_of(uid: int) -> list[str]:
    me = os.getpid()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid == uid:
                pids.append(name)
        except OSError:
            continue
    return pids


def live_processes_of(uid: int) -> list[int]:
    """Pids of this uid that still run (zombies excluded: they run nothing)."""
    alive = []
    for pid in _pids_of(uid):
        fields = _stat_fields(pid)
        if fields and fields[0] not in (b"Z", b"X"):
            alive.append(int(pid))
    return alive


def cpu_of(uid: int) -> tuple[float, list[int]]:
    """CPU seconds (user + system) of this uid's live processes, and their pids."""
    total, pids = 0.0, []
    for pid in _pids_of(uid):
        fields = _stat_fields(pid)
        if not fields or fields[0] in (b"Z", b"X"):
            continue
        try:
            total += (int(fields[11]) + int(fields[12])) / _TICKS
        except (IndexError, ValueError):
            continue
        pids.append(int(pid))
    return total, pids
