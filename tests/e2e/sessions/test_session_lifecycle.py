"""How sessions end: idle timeout, lifetime, close, the session's process dying; each
leaves nothing behind. Two sessions cannot see or signal each other; reattach by id; the
session zygote killed under an open session."""

from __future__ import annotations

import json
import time

import pytest
from support.fleet_faults import poll
from support.sessions import SESSION_ROOT, index_of, leftovers, processes, wait_clean, zygotes

from dispatcher import Client, SessionEnded, SessionLost
from warmfleet.contract import keys


def _wait_ended(client, sid: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = client.redis.get(keys.session(client.pool, sid))
        if raw and json.loads(raw)["state"] == "ended":
            return json.loads(raw)
        time.sleep(0.1)  # poll with a deadline
    raise AssertionError(f"session {sid} did not end within {timeout} s")


@pytest.mark.timeout(90)
def test_two_sessions_are_isolated(sclient):
    with sclient.session() as a, sclient.session() as b:
        ra = a.run("import os, subprocess\nopen('secret.txt', 'w').write('s3cret')\n"
                   "p = subprocess.Popen(['sleep', '300'])\nprint(os.getcwd(), p.pid)")
        assert ra.ok, ra
        cwd_a, pid_a = ra.stdout.split()
        rb = b.run(
            "import os, signal\n"
            f"try: os.listdir({cwd_a!r}); print('listed')\nexcept PermissionError: print('no list')\n"
            f"try: open({cwd_a!r} + '/secret.txt').read(); print('read')\nexcept PermissionError: print('no read')\n"
            f"try: os.kill({pid_a}, signal.SIGKILL); print('killed')\nexcept PermissionError: print('no kill')\n"
            "print(os.getcwd())"
        )
        assert rb.stdout.split("\n")[:3] == ["no list", "no read", "no kill"], rb
        assert rb.stdout.split("\n")[3] != cwd_a
        assert a.run("print(p.poll())").stdout == "None\n"  # still running: b could not touch it
        assert index_of(ra) != index_of(rb)


@pytest.mark.timeout(90)
def test_idle_timeout_ends_and_cleans_up(sfleet, sclient):
    s = sclient.session(idle_timeout=1.5)
    r = s.run("import subprocess, os\np = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
              "os.makedirs('d/e'); open('d/e/f', 'w').write('x')")
    assert r.ok, r
    rec = _wait_ended(sclient, s.id)
    assert (rec["reason"], rec["lost"]) == ("idle_timeout", False)
    with pytest.raises(SessionEnded) as info:
        s.run("print(1)")
    assert not isinstance(info.value, SessionLost) and "idle_timeout" in str(info.value)
    assert wait_clean(sfleet, index_of(r)) == {"pids": [], "entries": []}


@pytest.mark.timeout(90)
def test_max_lifetime_ends_the_session(sclient):
    with sclient.session(idle_timeout=60, max_lifetime=2) as s:
        s.run("x = 1")
        rec = _wait_ended(sclient, s.id)
        assert rec["reason"] == "max_lifetime"
        with pytest.raises(SessionEnded):
            s.run("print(x)")


@pytest.mark.timeout(90)
def test_killed_session_process_is_lost_and_leaves_nothing(sfleet, sclient):
    with sclient.session() as s:
        r = s.run("import os, subprocess\nsubprocess.Popen(['sleep', '300'], start_new_session=True)\nprint(os.getpid())")
        index = index_of(r)
        assert leftovers(sfleet, index)["pids"]
        kill = sfleet.pods[0].sandbox.exec("/bin/kill", "-9", r.stdout.strip())
        assert kill.returncode == 0, kill.stderr
        rec = _wait_ended(sclient, s.id)
        assert rec["lost"] and rec["reason"].startswith("died")
        with pytest.raises(SessionLost):
            s.run("print(1)")
    assert wait_clean(sfleet, index) == {"pids": [], "entries": []}


@pytest.mark.timeout(90)
def test_reattach_by_id_from_a_second_client(sfleet, sclient):
    with sclient.session() as s:
        s.run("shared = [1, 2]")
        with Client(sfleet.client_url) as other:
            again = other.session(id=s.id)
            assert again.run("shared.append(3); print(shared)").stdout == "[1, 2, 3]\n"
        assert s.run("print(len(shared))").stdout == "3\n"  # leaving a reattached block did not close it
    with Client(sfleet.client_url) as other, pytest.raises(SessionEnded):
        other.session(id=s.id)
    with pytest.raises(SessionLost):
        sclient.session(id="0" * 32)


@pytest.mark.timeout(90)
async def test_async_client_session(sfleet):
    from dispatcher import AsyncClient

    async with AsyncClient(sfleet.client_url) as ac:
        async with ac.session(idle_timeout=60) as s:
            await s.run("import math; r = math.sqrt(16)")
            out = await s.run("print(int(r))")
            assert out.stdout == "4\n"
        with pytest.raises(SessionEnded):
            await s.run("print(r)")


@pytest.mark.timeout(120)
def test_a_killed_zygote_is_restarted_and_open_sessions_go_on(sfleet, sclient):
    with sclient.session() as s:
        r = s.run("kept = 41\nopen('f', 'w').write('x')")  # a file: its index is clean only after the reset
        assert r.ok, r
        # The session's cfg (uid, workspace) travelled over the zygote's socket, not argv.
        assert not [argv for _, _, argv in processes(sfleet) if any(SESSION_ROOT in a for a in argv)]
        (old,) = zygotes(sfleet)
        kill = sfleet.pods[0].sandbox.exec("/bin/kill", "-9", str(old))
        assert kill.returncode == 0, kill.stderr
        assert s.run("print(kept + 1)").stdout == "42\n"  # a process of its own: unharmed
        with sclient.session() as t:  # forked by a new zygote
            assert t.run("print('kept' in globals())").stdout == "False\n"
        # A child the zygote is forking (the pod's next spare session) is root for an
        # instant before it drops to its uid: look until only the zygote itself is left.
        new = poll(lambda: (z if len(z := zygotes(sfleet)) == 1 else None), 15, "one session zygote")
        assert new != [old], (old, new)
    # Orphaned, the first session is reaped by the supervisor: its index is reset all the same.
    assert wait_clean(sfleet, index_of(r)) == {"pids": [], "entries": []}
    with open(sfleet.pods[0].log_path, errors="replace") as f:
        log = f.read()
    assert "session zygote lost" in log
    assert "survived SIGKILL" not in log  # its exit came through the supervisor's reaper, not a timeout
    with sclient.session() as u:
        assert u.run("print(1)").stdout == "1\n"


@pytest.mark.timeout(90)
def test_a_record_missing_for_a_while_is_not_a_lost_session(sfleet, sclient):
    """A fork bomb next door can starve the pod past its lease: the session's record
    lapses until the pod renews it. Calls submitted and waiting meanwhile are not lost
    (the client's grace, 10 s); here the record is deleted every 0.3 s meanwhile."""
    import threading

    import redis

    with sclient.session() as s:
        s.run("x = 5")
        stop = threading.Event()
        deleted = []

        def lapse() -> None:
            r = redis.Redis.from_url(sfleet.client_url)
            while not stop.wait(0.3):  # a period, not synchronisation
                deleted.append(r.delete(keys.session(sclient.pool, s.id)))
            r.close()

        t = threading.Thread(target=lapse)
        t.start()
        try:
            r = s.run("import time; time.sleep(3); print(x)")
            again = s.run("print(x + 1)")
        finally:
            stop.set()
            t.join()
        assert (r.stdout, again.stdout) == ("5\n", "6\n")
        assert sum(deleted) >= 2  # the pod's renewal (every 1 s) brought it back, and it went again
