"""TreeWeigher's rules on a made-up /proc: no processes needed."""

from __future__ import annotations

import pytest

from executor.lean import procscan

MB = 1 << 20


def _fake_proc(monkeypatch, table: dict[int, tuple]) -> None:
    """table: pid -> (ppid, rss bytes[, CPU seconds]); every process of the watched uid, all running."""

    def stat_fields(pid: str) -> list[bytes]:
        ppid, rss, *cpu = table[int(pid)]
        fields = [b"0"] * 22
        fields[0], fields[1], fields[21] = b"S", str(ppid).encode(), str(rss // procscan._PAGE).encode()
        fields[11] = str(round((cpu[0] if cpu else 0.0) * procscan._TICKS)).encode()
        return fields

    monkeypatch.setattr(procscan, "_pids_by_uid", lambda uids: {uid: [str(p) for p in table] for uid in uids})
    monkeypatch.setattr(procscan, "_stat_fields", stat_fields)


@pytest.mark.timeout(10)
def test_children_that_allocated_before_the_first_check_still_count(monkeypatch):
    # Eight children forked from a 10 MB main process, each already 60 MB bigger when the
    # watch first looks: their baseline is the parent's size seen in that same scan.
    table = {100: (1, 10 * MB)} | {101 + i: (100, 70 * MB) for i in range(8)}
    _fake_proc(monkeypatch, table)
    watch = procscan.TreeWeigher(uid=61000, main_pid=100)
    watch.weigh(0.25)
    assert watch.memory_bytes == 10 * MB + 8 * 60 * MB


@pytest.mark.timeout(10)
def test_a_forked_pool_sharing_its_parents_data_is_not_counted_per_worker(monkeypatch):
    # A 200 MB parent forks workers that share its pages (RSS equal to the parent's):
    # they add nothing until they grow.
    table = {100: (1, 200 * MB), 101: (100, 200 * MB), 102: (100, 200 * MB)}
    _fake_proc(monkeypatch, table)
    watch = procscan.TreeWeigher(uid=61000, main_pid=100)
    watch.weigh(0.25)
    assert watch.memory_bytes == 200 * MB
    table[101] = (100, 230 * MB)
    watch.weigh(0.5)
    assert watch.memory_bytes == 230 * MB


@pytest.mark.timeout(10)
def test_cpu_counts_from_birth_for_a_job_and_from_the_marks_for_a_session(monkeypatch):
    # A session process at 5 s CPU (its mark from its last reply: 4 s), a daemon of an
    # earlier call at 7 s (first seen now: counts from here), on a fresh job uid all of it.
    table = {100: (1, 10 * MB, 5.0), 101: (100, 10 * MB, 7.0)}
    _fake_proc(monkeypatch, table)
    job = procscan.TreeWeigher(uid=61000, main_pid=100)
    job.cores = 8
    job.weigh(10.0)
    assert job.cpu_s == pytest.approx(12.0)
    session = procscan.TreeWeigher(uid=61000, main_pid=100, marks={100: 4.0})
    session.cores = 8
    session.weigh(10.0)
    assert session.cpu_s == pytest.approx(1.0) and session.processes == 2
    table[101] = (100, 10 * MB, 7.5)
    session.weigh(10.0)
    assert session.cpu_s == pytest.approx(1.5)


@pytest.mark.timeout(10)
def test_cpu_is_never_more_than_the_cores_could_give_in_the_time_elapsed(monkeypatch):
    # gVisor charges time blocked in the Sentry as system time: one rule for jobs and
    # sessions, no allowance above cores x elapsed.
    _fake_proc(monkeypatch, {100: (1, 10 * MB, 30.0)})
    for weigher in (procscan.TreeWeigher(uid=61000, main_pid=100),
                    procscan.TreeWeigher(uid=61000, main_pid=100, marks={})):
        weigher.cores = 2
        weigher.weigh(0.25)
        assert weigher.cpu_s == pytest.approx(0.5)


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
