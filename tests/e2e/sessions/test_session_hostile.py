"""Hostile code inside a session: a fork bomb, a daemon, planted links. Each is
contained while the session lives and gone when it ends; jobs keep being served."""

from __future__ import annotations

import json

import pytest
from support.sessions import index_of, wait_clean

from dispatcher import SessionLost
from warmfleet.contract import keys


# Each way a fork bomb's call may be stopped, and the words its error must then carry
# (executor/session_handle.py classify, executor/session_calls.py).
FORK_BOMB_ENDINGS = {
    "error": "process limit",  # stopped at the session's process cap
    "timeout": "wall-clock limit",
    "cpu_limit": "CPU-time limit",
    "memory_limit": "memory limit",
}
LEASE_LOST = "its lease expired"


@pytest.mark.timeout(150)
def test_fork_bomb_is_contained_and_cleaned_up(sfleet, sclient):
    s = sclient.session()
    s.run("pass")
    index = json.loads(sclient.redis.get(keys.session(sclient.pool, s.id)))["index"]
    try:
        r = s.run("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass", timeout=2, cpu_time=2)
    except SessionLost as exc:
        # inside gVisor a fork bomb can starve the pod past the session's lease: lost, and
        # the reason says which budget ended it, or that the lease ran out
        assert LEASE_LOST in exc.reason or (
            exc.reason.startswith("lost: ") and any(w in exc.reason for w in FORK_BOMB_ENDINGS.values())
        ), exc.reason
    else:
        # stopped at the process cap, its wall clock or its CPU budget, and the error says which
        assert r.status.value in FORK_BOMB_ENDINGS, r
        assert FORK_BOMB_ENDINGS[r.status.value] in (r.error or ""), r
        if "the session ended" in (r.error or ""):  # killed with its session: the next call is told so
            with pytest.raises(SessionLost) as lost:
                s.run("print(1)")
            assert lost.value.reason.startswith("lost: ") and FORK_BOMB_ENDINGS[r.status.value] in lost.value.reason
        else:  # interrupted: the interpreter lives on
            assert s.run("print(1)").stdout == "1\n"
    s.close()
    assert wait_clean(sfleet, index) == {"pids": [], "entries": []}
    assert sclient.run("print('served')", timeout=10).stdout == "served\n"  # the job slot was not starved
    with sclient.session() as after:  # and the pod still opens and serves sessions
        assert after.run("print(2)").stdout == "2\n"


@pytest.mark.timeout(90)
def test_daemon_survives_calls_but_not_the_session(sfleet, sclient):
    s = sclient.session()
    r = s.run("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
              "        while True: time.sleep(1)\n    os._exit(0)\nprint('ok')")
    assert r.ok, r
    index = index_of(r)
    s.close()
    assert wait_clean(sfleet, index) == {"pids": [], "entries": []}


# What a root process of the pod following a planted link could damage: the files the
# fleet generated for this pod (its users, name service, hosts and settings), as the pod
# sees them.
_POD_FILES = """
import hashlib, json, os
paths = ['/etc/passwd', '/etc/group', '/etc/nsswitch.conf', '/etc/hosts']
paths += sorted(os.path.join('/run', n) for n in os.listdir('/run')  # health-*.json: the pod's own live state
               if os.path.isfile(os.path.join('/run', n)) and not n.startswith('health-'))
print(json.dumps({p: hashlib.sha256(open(p, 'rb').read()).hexdigest() for p in paths}
                 | {'/etc entries': sorted(os.listdir('/etc')), '/ entries': sorted(os.listdir('/'))}))
"""


def pod_files(fleet) -> dict:
    out = fleet.pods[0].sandbox.exec("/usr/bin/python3", "-c", _POD_FILES)
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    return json.loads(out.stdout)


@pytest.mark.timeout(90)
def test_planted_links_are_never_followed(sfleet, sclient):
    """Links to the pod's /etc and / planted in the workspace: the executor writes input
    files, reads out/ and empties the workspace as root, and follows none of them. The
    pod's generated files are byte for byte the same after the session, and the next
    session on that index finds an empty workspace."""
    before = pod_files(sfleet)
    assert any(path.startswith("/run/") for path in before)  # the pod's settings file is among them
    with sclient.session() as s:
        r = s.run("import os\nos.symlink('/etc/passwd', 'in.csv')\nos.symlink('/etc', 'out')\nos.symlink('/', 'root')\n"
                  "os.symlink('/run', 'run')")
        assert r.ok, r
        assert r.files == {} and r.files_truncated is False  # out/ is a link to /etc: nothing read through it
        r = s.run("print(os.path.islink('in.csv'), open('in.csv').read())", files={"in.csv": b"mine"})
        assert r.stdout == "False mine\n"  # the link was replaced, not written through
        index = index_of(r)
    assert wait_clean(sfleet, index) == {"pids": [], "entries": []}  # emptied without following 'root' or 'run'
    assert pod_files(sfleet) == before
    for _ in range(8):  # the next session on that index (the pod hands out free indexes)
        with sclient.session() as after:
            seen = after.run("import os\nprint(sorted(os.listdir('.')), open('/etc/passwd').read().count(':x:') > 0)")
            if index_of(seen) == index:
                assert seen.stdout == "[] True\n", seen
                break
    else:
        pytest.fail(f"no later session got index {index}")
