"""Hostile code inside a session: a fork bomb, a daemon, planted links. Each is
contained while the session lives and gone when it ends; jobs keep being served."""

from __future__ import annotations

import pytest
from support.sessions import index_of, wait_clean


@pytest.mark.timeout(120)
def test_fork_bomb_is_contained_and_cleaned_up(sfleet, sclient):
    s = sclient.session()
    r = s.run("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass", timeout=2, cpu_time=2)
    assert r.status.value in ("timeout", "cpu_limit"), r
    index = index_of(r)
    s.close()
    assert wait_clean(sfleet, index) == {"pids": [], "entries": []}
    assert sclient.run("print('served')", timeout=10).stdout == "served\n"  # the job slot was not starved


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
