"""A call's budgets: the wall clock and the CPU budget interrupt the call and the session
goes on; a call that will not stop is killed with its session, which then says so."""

from __future__ import annotations

import pytest

from dispatcher import SessionLost


@pytest.mark.timeout(90)
def test_timeout_interrupts_and_globals_survive(sclient):
    with sclient.session(idle_timeout=60) as s:
        s.run("n = 7")
        r = s.run("import time\nwhile True: time.sleep(0.05)", timeout=1)
        assert r.status.value == "timeout", r
        assert r.duration_s < 5
        assert s.run("print(n)").stdout == "7\n"


@pytest.mark.timeout(90)
def test_cpu_budget_interrupts_and_globals_survive(sclient):
    with sclient.session(idle_timeout=60) as s:
        s.run("n = 8")
        r = s.run("while True: pass", cpu_time=1, timeout=20)
        assert r.status.value == "cpu_limit", r
        assert s.run("print(n)").stdout == "8\n"
        # A forked child's CPU counts too: the tree is weighed, not one process.
        r = s.run("import os\npid = os.fork()\nif pid == 0:\n    while True: pass\nos.waitpid(pid, 0)",
                  cpu_time=1, timeout=20)
        assert r.status.value == "cpu_limit", r


@pytest.mark.timeout(90)
def test_memory_error_is_memory_limit_and_session_survives(sclient):
    with sclient.session(idle_timeout=60) as s:
        s.run("keep = 'k'")
        r = s.run("x = bytearray(400 << 20)", memory_mb=128)
        assert r.status.value == "memory_limit", r
        assert s.run("print(keep)").stdout == "k\n"


@pytest.mark.timeout(90)
def test_a_call_that_ignores_its_interrupt_ends_the_session(sclient):
    with sclient.session(idle_timeout=60) as s:
        r = s.run("import signal; signal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True: pass", timeout=1, cpu_time=30)
        assert r.status.value == "timeout", r
        assert "session ended" in (r.error or "")
        with pytest.raises(SessionLost) as info:
            s.run("print(1)")
        assert "killed" in info.value.reason
        # The next session gets its own interpreter, not a survivor of this one.
        with sclient.session() as fresh:
            assert fresh.run("print('n' in globals())").stdout == "False\n"
