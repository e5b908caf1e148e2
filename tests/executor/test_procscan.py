"""JobTreeWatch's memory rule on a made-up /proc: no processes needed."""

from __future__ import annotations

import pytest

from executor.lean import procscan

MB = 1 << 20


def _fake_proc(monkeypatch, table: dict[int, tuple[int, int]]) -> None:
    """table: pid -> (ppid, rss bytes); every process of the watched uid, all running."""

    def stat_fields(pid: str) -> list[bytes]:
        ppid, rss = table[int(pid)]
        fields = [b"0"] * 22
        fields[0], fields[1], fields[21] = b"S", str(ppid).encode(), str(rss // procscan._PAGE).encode()
        return fields

    monkeypatch.setattr(procscan, "_pids_by_uid", lambda uids: {uid: [str(p) for p in table] for uid in uids})
    monkeypatch.setattr(procscan, "_stat_fields", stat_fields)


@pytest.mark.timeout(10)
def test_children_that_allocated_before_the_first_check_still_count(monkeypatch):
    # Eight children forked from a 10 MB main process, each already 60 MB bigger when the
    # watch first looks: their baseline is the parent's size seen in that same scan.
    table = {100: (1, 10 * MB)} | {101 + i: (100, 70 * MB) for i in range(8)}
    _fake_proc(monkeypatch, table)
    watch = procscan.JobTreeWatch(uid=61000, main_pid=100, started=0.0)
    watch.check(now=0.25)
    assert watch.memory_bytes == 10 * MB + 8 * 60 * MB


@pytest.mark.timeout(10)
def test_a_forked_pool_sharing_its_parents_data_is_not_counted_per_worker(monkeypatch):
    # A 200 MB parent forks workers that share its pages (RSS equal to the parent's):
    # they add nothing until they grow.
    table = {100: (1, 200 * MB), 101: (100, 200 * MB), 102: (100, 200 * MB)}
    _fake_proc(monkeypatch, table)
    watch = procscan.JobTreeWatch(uid=61000, main_pid=100, started=0.0)
    watch.check(now=0.25)
    assert watch.memory_bytes == 200 * MB
    table[101] = (100, 230 * MB)
    watch.check(now=0.5)
    assert watch.memory_bytes == 230 * MB


@pytest.mark.timeout(10)
def test_usage_by_uid_walks_proc_once_for_many_uids(monkeypatch):
    # Sessions' between-call checks weigh every idle session from one walk.
    import os
    import subprocess

    walks = []
    listdir = os.listdir
    monkeypatch.setattr(procscan.os, "listdir", lambda path: walks.append(path) or listdir(path))
    child = subprocess.Popen(["sleep", "30"])
    try:
        me, nobody = os.getuid(), 2**31 - 7  # a uid no process has
        usage = procscan.usage_by_uid({me, nobody})
        assert walks == ["/proc"]
        assert child.pid in {pid for pid, _, _, _ in usage[me]}
        assert nobody not in usage
        assert os.getpid() not in {pid for pid, _, _, _ in usage[me]}  # the scanner leaves itself out
    finally:
        child.kill()
        child.wait()
