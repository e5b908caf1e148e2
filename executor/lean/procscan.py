"""What /proc says about the processes of one uid: which are alive, and how much CPU
they used; and reaping our own children that exited. Stdlib only (the lean runner, the
job child and the session zygote import it).

Two uses: confirming that nothing of a finished job still runs, and job-wide (session-wide)
CPU and memory budgets. RLIMIT_CPU and RLIMIT_AS are per process (a job may have 64), and
inside gVisor RLIMIT_CPU is not even enforced on a job's forked descendants (checked:
a forked `while True: pass` ran to the wall clock), so the runner weighs the uid's
whole tree instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_CORES = os.cpu_count() or 1  # once: it reads /sys, and the runner makes a watch per job


def _stat_fields(pid: str) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # Fields after the ")" closing the command name: state [0], ppid [1], utime [11],
            # stime [12], rss in pages [21].
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None  # gone meanwhile


def _pids_by_uid(uids: set[int]) -> dict[int, list[str]]:
    """The pids of each of these uids, from one walk of /proc (a stat per process, ~30 us
    each under gVisor: walk once for many uids)."""
    me = os.getpid()
    pids: dict[int, list[str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            uid = os.stat(f"/proc/{name}").st_uid
        except OSError:
            continue
        if uid in uids:
            pids.setdefault(uid, []).append(name)
    return pids


def _pids_of(uid: int) -> list[str]:
    return _pids_by_uid({uid}).get(uid, [])


def running(pid: int | str) -> bool:
    """The process exists and is not a zombie (a zombie runs nothing)."""
    fields = _stat_fields(str(pid))
    return bool(fields) and fields[0] not in (b"Z", b"X")


def rss_bytes(pid: int) -> int:
    fields = _stat_fields(str(pid))
    try:
        return int(fields[21]) * _PAGE if fields else 0
    except (IndexError, ValueError):
        return 0


def live_processes_of(uid: int) -> list[int]:
    """Pids of this uid that still run."""
    return [int(pid) for pid in _pids_of(uid) if running(pid)]


class TreeWeigher:
    """CPU and memory of one job's or one session's whole process tree (every live
    process of its uid), weighed against its budgets by the runner and the session handle.

    CPU: user + system time since each process's mark, summed, but never more than the
    wall time elapsed times the cores, because gVisor charges time a task spends blocked in
    the Sentry as system time (a fork bomb "used" 125 s of CPU in 3.8 s on 2 cores). A
    job's uid is fresh, so every process counts from its birth (`marks` None). A session's
    uid keeps processes across calls (`marks`: pid -> CPU already accounted for): the
    session process counts from its mark (its CPU at its last reply, 0 if none), any other
    from when first seen.
    Memory: the main process counts what it holds above `main_base` (a preloaded one's
    modules); any other process counts what it grew since first seen, its baseline being
    its parent's size (forked children share the parent's pages: summing their RSS would
    count a multiprocessing pool's data once per worker), so a child that allocated before
    we first saw it still counts.
    """

    def __init__(self, uid: int, main_pid: int, main_base: int = 0, marks: dict[int, float] | None = None) -> None:
        self.uid = uid
        self.main_pid = main_pid
        self.main_base = main_base
        self.marks = marks
        self.cores = _CORES
        self.baseline: dict[int, int] = {}
        self.last_rss: dict[int, int] = {}
        self.cpu_s = 0.0
        self.memory_bytes = 0
        self.processes = 0  # live ones, at the last weighing

    def weigh(self, elapsed: float, seen: "Usage | None" = None) -> list[int]:
        """Refresh cpu_s, memory_bytes and processes from `seen` (a scan already made) or a
        new scan; `elapsed`: the wall time the CPU is counted over. Returns the live pids."""
        if seen is None:
            seen = usage_of(self.uid)
        cpu, memory, pids, rss_of, parents = 0.0, 0, [], {}, {}
        marks = self.marks
        for ipid, ppid, pcpu, rss in seen:
            if marks is not None:
                pcpu -= marks.get(ipid, 0.0) if ipid == self.main_pid else marks.setdefault(ipid, pcpu)
            cpu += max(0.0, pcpu)
            pids.append(ipid)
            rss_of[ipid] = rss
            parents[ipid] = ppid
        for ipid, rss in rss_of.items():
            if ipid == self.main_pid:
                memory += max(0, rss - self.main_base)
                continue
            if ipid not in self.baseline:
                # The parent's size from the last scan, or from this one when the child
                # appeared (and may have allocated) before any scan saw its parent: on the
                # first check a bomb of children allocating at once would otherwise count 0.
                ppid = parents[ipid]
                parent_rss = self.last_rss.get(ppid, rss_of.get(ppid, rss))
                self.baseline[ipid] = min(rss, parent_rss)
            memory += max(0, rss - self.baseline[ipid])
        self.last_rss = rss_of
        self.cpu_s = min(cpu, elapsed * self.cores)
        self.memory_bytes = memory
        self.processes = len(pids)
        return pids


Usage = list[tuple[int, int, float, int]]  # (pid, ppid, CPU seconds, RSS bytes) per live process


def usage_of(uid: int) -> Usage:
    """Every live process of this uid (a session's)."""
    return usage_by_uid({uid}).get(uid, [])


def usage_by_uid(uids: set[int]) -> dict[int, Usage]:
    """The live processes of each of these uids, from one walk of /proc."""
    out: dict[int, Usage] = {}
    for uid, pids in _pids_by_uid(uids).items():
        for pid in pids:
            fields = _stat_fields(pid)
            if not fields or fields[0] in (b"Z", b"X"):
                continue
            try:
                out.setdefault(uid, []).append(
                    (int(pid), int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS, int(fields[21]) * _PAGE)
                )
            except (IndexError, ValueError):
                continue
    return out


def reaped_children() -> Iterator[tuple[int, int]]:
    """(pid, wait status) of each child of ours that has exited, reaped without blocking."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status
