"""Sessions through a real runsc pod: state and files persist, sessions are isolated,
calls keep their budgets, and a session that ended says so."""

from __future__ import annotations

import pytest

from dispatcher import SessionEnded


@pytest.mark.timeout(90)
def test_globals_and_files_persist(sclient):
    with sclient.session(idle_timeout=60, max_lifetime=300) as s:
        first = s.run("import os; x = 41; open('notes.txt', 'w').write('hi'); print(open('/proc/version').read())")
        assert first.ok, first
        assert first.stdout.startswith("Linux version 4.4.0")  # it ran under gVisor's Sentry
        r = s.run("print(x + 1, open('notes.txt').read(), open('in.csv').read())", files={"in.csv": b"a,b"})
        assert (r.status.value, r.stdout) == ("ok", "42 hi a,b\n")
        err = s.run("1/0")
        assert err.status.value == "error" and "ZeroDivisionError" in err.stderr
        assert s.run("print(x)").stdout == "41\n"  # an exception does not lose the globals
        out = s.run("os.makedirs('out', exist_ok=True); open('out/r.txt', 'w').write(str(x))")
        assert out.file("r.txt") == b"41"
    with pytest.raises(SessionEnded) as info:
        s.run("print(x)")
    assert "closed" in str(info.value)


@pytest.mark.timeout(60)
def test_a_call_delivered_twice_runs_once(sclient):
    import json
    import time

    from warmfleet.contract import keys

    with sclient.session() as s:
        s.run("n = 0")
        call = {"call_id": "dup0123456789", "code": "n += 1\nprint(n)", "timeout": 5, "cpu_time": 5, "memory_mb": 256,
                "submitted_at": time.time()}
        for _ in range(2):  # the same call id twice, as a retried XADD would
            sclient.redis.xadd(keys.session_calls(sclient.pool, s.id), {"call": json.dumps(call)})
        deadline = time.monotonic() + 20
        while not sclient.redis.exists(keys.result(sclient.pool, "dup0123456789")) and time.monotonic() < deadline:
            time.sleep(0.05)  # poll with a deadline
        assert json.loads(sclient.redis.get(keys.result(sclient.pool, "dup0123456789")))["stdout"] == "1\n"
        assert s.run("print(n)").stdout == "1\n"  # it ran once


@pytest.mark.timeout(60)
def test_a_session_in_a_pool_without_egress_reaches_nothing(sclient):
    with sclient.session() as s:
        r = s.run(
            "import os, socket\n"
            "print(sorted(k for k in os.environ if 'proxy' in k.lower()))\n"
            "for port in (3128, 9464):  # no relay; the pod's metrics port is out of reach\n"
            "    try:\n        socket.create_connection(('127.0.0.1', port), timeout=5); print(port, 'connected')\n"
            "    except OSError as e:\n        print(port, type(e).__name__)\n"
            "try:\n    socket.getaddrinfo('example.test', 80)\nexcept OSError as e:\n    print(e)\n"
        )
        assert r.ok, r
        lines = r.stdout.splitlines()
        assert lines[:3] == ["[]", "3128 ConnectionRefusedError", "9464 ConnectionRefusedError"], r.stdout
        assert "network access denied by sandbox policy: example.test; this pool allows no network access" in lines[3]
        assert r.egress is None
