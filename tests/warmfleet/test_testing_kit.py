"""warmfleet.testing, the stand-in fleet users test their controllers against: the real
Client and AsyncClient, unchanged, get the Results, statuses and session behaviour a
fleet gives, from plain subprocesses on an in-process fake Redis (no redis-server, no
runsc). Nothing here is about isolation: the stand-in has none, and says so."""

from __future__ import annotations

import json
import os
import warnings

import pytest

from dispatcher import InvalidJob, SessionEnded, SessionLost
from warmfleet import Status
from warmfleet.contract import keys
from warmfleet.contract.schema import FleetLimits, encode_file
from warmfleet.testing import ManualClock, NotIsolatedWarning, StandInFleet

pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore::warmfleet.testing.NotIsolatedWarning")]


@pytest.fixture(scope="module")
def fleet():
    with StandInFleet(limits=FleetLimits(output_bytes=4096)) as f:
        yield f


@pytest.fixture
def client(fleet):
    with fleet.client() as c:
        yield c


# -- jobs ------------------------------------------------------------------------------
def test_a_job_comes_back_as_a_fleet_result(client, fleet):
    result = client.run("import sys; print('out'); print('err', file=sys.stderr)")
    assert (result.status, result.exit_code, result.stdout, result.stderr) == (Status.OK, 0, "out\n", "err\n")
    assert result.executor.startswith("standin-default/") and result.duration_s > 0 and result.cpu_s >= 0
    assert fleet.jobs[-1].job_id == result.job_id and fleet.jobs[-1].timeout == FleetLimits().timeout


def test_an_uncaught_exception_is_an_error_with_its_traceback(client):
    result = client.run("def f():\n    raise ValueError('bad')\nf()")
    assert (result.status, result.exit_code, result.error) == (Status.ERROR, 1, "exited with code 1")
    assert 'File "<job>", line 2, in f' in result.stderr and result.stderr.endswith("ValueError: bad\n")


def test_the_wall_clock_ends_a_job_as_a_timeout(client):
    result = client.run("import time; print('started', flush=True); time.sleep(30)", timeout=0.5)
    assert result.status is Status.TIMEOUT and result.stdout == "started\n"
    assert result.error == "wall-clock limit of 0.5 s exceeded"


def test_output_over_the_cap_is_an_output_limit(client):
    result = client.run("print('x' * 10000)")
    assert result.status is Status.OUTPUT_LIMIT and result.stdout_truncated
    assert result.stdout == "x" * 4096


@pytest.mark.timeout(180)  # CPU seconds: on a machine shared by several test runs, many more wall seconds
def test_cpu_and_memory_budgets_hold_as_rlimits(client):
    # RLIMIT_CPU counts whole seconds (the runner sets ceil(budget)): 1.5 s stops at 2 s,
    # clear of the 0.95 x budget the runner needs to read a SIGKILL as the CPU limit.
    cpu = client.run("while True: pass", cpu_time=1.5, timeout=120)
    assert cpu.status is Status.CPU_LIMIT and cpu.cpu_s >= 1.4, cpu
    memory = client.run("b = bytearray(512 << 20)", memory_mb=64)
    assert memory.status is Status.MEMORY_LIMIT and "MemoryError" in memory.stderr


def test_bash_runs_and_files_go_in_and_out(client):
    result = client.run("cat in.txt; mkdir -p out/sub; echo made > out/sub/r.txt; exit 3", language="bash",
                        files={"in.txt": "given\n"})
    assert (result.status, result.exit_code, result.stdout) == (Status.ERROR, 3, "given\n")
    assert result.file("sub/r.txt") == b"made\n"


def test_a_job_is_a_cell_with_the_fleets_outputs_and_structured_error(client):
    result = client.run("import os\nprint('side')\nos.environ['GREETING'] + ' ' + str(6 * 7)", env={"GREETING": "hi"})
    assert (result.stdout, result.text) == ("side\n", "'hi 42'")
    assert result.outputs == [{"type": "result", "data": {"text/plain": "'hi 42'"}}]
    failed = client.run("def f():\n    raise KeyError('k')\nf()")
    assert (failed.status, failed.error_name, failed.error_value) == (Status.ERROR, "KeyError", "'k'")
    assert "in f" in (failed.traceback or "")


def test_a_job_the_fleet_refuses_is_rejected_with_why(client, fleet):
    # The client refuses bad jobs itself; one written by another producer reaches the fleet.
    job = {"job_id": "j1", "code": "print(1)", "memory_mb": 1, "reply_to": client.channel}
    fleet.connection().xadd(keys.stream(fleet.pool), {"job": json.dumps(job)})
    result = client.wait("j1", timeout=10)
    assert result.status is Status.REJECTED and "memory_mb must be at least 32" in (result.error or "")
    with pytest.raises(InvalidJob, match="memory_mb"):
        client.submit("print(1)", memory_mb=1)


def test_an_entry_with_no_job_is_dead_lettered_and_nothing_waits(fleet):
    r = fleet.connection()
    r.xadd(keys.stream(fleet.pool), {"junk": "1"})
    fleet.join(timeout=10)
    assert any(f["reason"] == "entry has no 'job' field" for _, f in r.xrange(keys.dead_letters(fleet.pool)))


def test_streaming_map_and_idempotent_submits(client, fleet):
    items = list(client.stream("import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.05)"))
    assert "".join(c.data for c in items[:-1] if c.stream == "stdout") == "0\n1\n2\n" and items[-1].ok
    assert [r.stdout for r in client.map([f"print({i})" for i in range(5)])] == [f"{i}\n" for i in range(5)]
    first = client.submit("print('once')", idempotency_key="k")
    assert client.submit("print('twice')", idempotency_key="k") == first
    assert client.wait(first).stdout == "once\n"


async def test_the_async_client_runs_jobs_and_sessions(fleet):
    async with fleet.async_client() as client:
        assert (await client.run("print(6 * 7)")).stdout == "42\n"
        async with client.session() as s:
            await s.run("x = 1")
            assert (await s.run("print(x + 1)")).stdout == "2\n"
        with pytest.raises(SessionEnded, match="closed"):
            await s.run("x")


# -- sessions --------------------------------------------------------------------------
def test_a_session_keeps_its_globals_and_workspace_until_closed(client, fleet):
    with client.session() as s:
        assert s.run("x = 41; open('f.txt', 'w').write('kept')").ok
        assert s.run("print(x + 1, open('f.txt').read())").stdout == "42 kept\n"
        with fleet.client() as other:  # reattached from elsewhere: the same interpreter
            assert other.session(id=s.id).run("print(x)").stdout == "41\n"
    with pytest.raises(SessionEnded, match="closed") as ended:
        s.run("x")
    assert type(ended.value) is SessionEnded


def test_session_calls_are_numbered_cells(client):
    with client.session() as s:
        first = s.run("import os\nos.environ['N']", env={"N": "1"})
        second = s.run("[1, 2]")
        assert (first.execution_count, first.text, second.execution_count, second.text) == (1, "'1'", 2, "[1, 2]")
        interrupted = s.run("import time; time.sleep(30)", timeout=0.5)
        assert interrupted.error_name == "Interrupted" and "wall-clock limit" in (interrupted.error_value or "")


def test_a_call_past_its_wall_clock_is_interrupted_and_the_session_lives(client):
    with client.session() as s:
        s.run("x = 1")
        timed_out = s.run("import time; time.sleep(30)", timeout=0.5)
        assert timed_out.status is Status.TIMEOUT and "interrupted" in (timed_out.error or "")
        failed = s.run("1 / 0")
        assert failed.status is Status.ERROR and "ZeroDivisionError" in failed.stderr
        assert s.run("print(x)").stdout == "1\n"


@pytest.mark.timeout(180)
def test_a_calls_budgets_interrupt_it_and_the_session_lives(client):
    with client.session() as s:
        s.run("x = 1")
        loud = s.run("while True: print('y' * 1000)")
        assert loud.status is Status.OUTPUT_LIMIT and loud.stdout_truncated and len(loud.stdout) == 4096, loud.error
        busy = s.run("while True: pass", cpu_time=0.5, timeout=120)
        assert busy.status is Status.CPU_LIMIT and "interrupted" in (busy.error or ""), busy.error
        greedy = s.run("b = bytearray(512 << 20)", memory_mb=64)
        assert greedy.status is Status.MEMORY_LIMIT and "MemoryError" in greedy.stderr, greedy.error
        assert s.run("print(x)").stdout == "1\n"


def test_a_session_whose_process_dies_in_a_call_answers_it_then_is_lost(client):
    s = client.session()
    died = s.run("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert died.status is Status.ERROR and "the session ended" in (died.error or "")
    with pytest.raises(SessionLost, match="lost"):
        s.run("1")


def test_a_malformed_call_is_rejected_and_the_session_goes_on(client, fleet):
    with client.session() as s:
        fleet.connection().xadd(keys.session_calls(fleet.pool, s.id), {"call": json.dumps(
            {"call_id": "c1", "timeout": "soon", "reply_to": client.channel})})
        rejected = client.wait("c1", timeout=10)
        assert rejected.status is Status.REJECTED and "malformed session call" in (rejected.error or "")
        assert s.run("print('still open')").stdout == "still open\n"


def test_idle_timeout_and_lifetime_end_sessions_on_the_fleets_clock():
    with StandInFleet(clock=ManualClock()) as fleet, fleet.client() as client:
        idle = client.session(idle_timeout=60)
        idle.run("x = 1")
        fleet.advance(59)
        assert idle.run("print(x)").stdout == "1\n"  # a call resets the idle clock
        fleet.advance(61)
        with pytest.raises(SessionEnded, match="idle_timeout"):
            idle.run("x")
        old = client.session(idle_timeout=600, max_lifetime=100)
        for _ in range(2):
            fleet.advance(40)
            old.run("pass")  # busy, never idle: the lifetime still ends it
        fleet.advance(40)
        with pytest.raises(SessionEnded, match="max_lifetime") as ended:
            old.run("pass")
        assert type(ended.value) is SessionEnded


def test_a_killed_session_process_is_lost(client, fleet):
    s = client.session()
    s.run("x = 1")
    pid = fleet.kill_session_process(s.id)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(SessionLost, match="died"):
        s.run("x")
    with pytest.raises(KeyError):
        fleet.session_pid(s.id)


# -- the stand-in itself -----------------------------------------------------------------
def test_it_warns_that_it_isolates_nothing_and_leaves_no_process_behind():
    with pytest.warns(NotIsolatedWarning, match="isolates NOTHING"):
        fleet = StandInFleet(slots=1).start()
    try:
        with fleet.client() as client:
            assert client.run("print(1)").ok
            s = client.session()
            session_pid = fleet.session_pid(s.id)
        runner_pid = fleet._runners[0].proc.pid  # type: ignore[union-attr]
    finally:
        fleet.stop()
    for pid in (session_pid, runner_pid):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not os.path.exists(fleet.root)


def test_stopping_ends_a_job_and_a_call_in_progress_at_once():
    import time

    fleet = StandInFleet(slots=1).start()
    with fleet.client() as client:
        job_id = client.submit("import time; time.sleep(60)", timeout=120)
        s = client.session()
        call_id = client.core.build("x", {}).job_id  # a call written as the session client does, without waiting
        fleet.connection().xadd(keys.session_calls(fleet.pool, s.id), {"call": json.dumps(
            {"call_id": call_id, "code": "open('started', 'w').close(); import time; time.sleep(60)", "timeout": 120.0,
             "cpu_time": 10.0, "memory_mb": 256, "reply_to": client.channel})})
        started_file = os.path.join(fleet.host.find(s.id).workspace, "started")
        while not (fleet.jobs and os.path.exists(started_file)):  # both running (a poll; the test has a deadline)
            time.sleep(0.01)
        started = time.monotonic()
        fleet.stop()
        assert time.monotonic() - started < 10
        assert client.wait(job_id, timeout=5).status is Status.FAILED
        assert client.wait(call_id, timeout=5).status is Status.ERROR


def test_input_files_are_the_clients_encoding():
    # One encoding for both ends (warmfleet.contract.schema): what the client sends, a job reads.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotIsolatedWarning)
        with StandInFleet(slots=1) as fleet, fleet.client() as client:
            result = client.run("print(open('b.bin', 'rb').read())", files={"b.bin": b"\x00\xff"})
    assert result.stdout == "b'\\x00\\xff'\n" and fleet.jobs[0].files == {"b.bin": encode_file(b"\x00\xff")}
