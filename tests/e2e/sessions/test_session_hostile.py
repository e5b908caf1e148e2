"""Hostile code inside a session: a fork bomb, a daemon, planted links. Each is
contained while the session lives and gone when it ends; jobs keep being served."""

from __future__ import annotations

import json

import pytest
from support.sessions import index_of, wait_clean

from dispatcher import SessionLost
from warmfleet.contract import keys


@pytest.mark.timeout(150)
def test_fork_bomb_is_contained_and_cleaned_up(sfleet, sclient):
    s = sclient.session()
    s.run("pass")
    index = json.loads(sclient.redis.get(keys.session(sclient.pool, s.id)))["index"]
    try:
        r = s.run("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass", timeout=2, cpu_time=2)
        # Stopped at the process cap, its wall clock or its CPU budget: the interpreter
        # survives, or (if it did not take the interrupt in time) the session ends.
        assert r.status.value in ("error", "timeout", "cpu_limit", "memory_limit"), r
    except SessionLost:
        pass  # inside gVisor a fork bomb can starve the pod past the session's lease: lost, said so
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


@pytest.mark.timeout(90)
def test_planted_links_are_never_followed(sfleet, sclient):
    with sclient.session() as s:
        r = s.run("import os\nos.symlink('/etc/passwd', 'in.csv')\nos.symlink('/etc', 'out')\nos.symlink('/', 'root')")
        assert r.ok, r
        assert r.files == {} and r.files_truncated is False  # out/ is a link to /etc: nothing read through it
        r = s.run("print(os.path.islink('in.csv'), open('in.csv').read())", files={"in.csv": b"mine"})
        assert r.stdout == "False mine\n"  # the link was replaced, not written through
        index = index_of(r)
    assert wait_clean(sfleet, index) == {"pids": [], "entries": []}
    with open("/etc/passwd") as f:
        assert "root" in f.read()  # nothing followed the link out of the workspace
