"""Snippets that try to outlast or outgrow their budgets: CPU, wall clock, memory,
processes, threads; and the tricks that try to switch the budgets off."""

import pytest

from warmfleet.contract.schema import Status

GRACE = 0.5  # the runner's kill_grace_s default: SIGKILL this long after the wall clock


def test_fork_bomb_hits_the_job_wide_cpu_limit_and_leaves_nothing(run_hostile):
    # 64 processes (RLIMIT_NPROC) that keep forking: the CPU budget covers the whole tree.
    r = run_hostile(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        timeout=20, cpu_time=1,
    )
    assert (r.status, r.exit_code) == (Status.CPU_LIMIT, -9), r
    assert r.duration_s < 10, r


def test_thread_bomb_is_stopped_by_the_process_limit(run_hostile):
    r = run_hostile(
        "import threading, time\nwhile True:\n"
        "    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()"
    )
    assert (r.status, r.exit_code) == (Status.ERROR, 1), r
    assert "can't start new thread" in r.stderr


def test_one_big_allocation_hits_the_memory_limit(run_hostile):
    r = run_hostile("x = bytearray(1 << 30)\nprint('allocated')", memory_mb=64)
    assert r.status is Status.MEMORY_LIMIT, r
    assert "allocated" not in r.stdout and "MemoryError" in r.stderr


def test_growing_allocation_hits_the_memory_limit(run_hostile):
    r = run_hostile("chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 20))", memory_mb=64)
    assert r.status is Status.MEMORY_LIMIT, r


def test_memory_bomb_split_across_children_hits_the_limit_in_each(run_hostile):
    # Each child gets the job's memory budget; one that exceeds it dies with MemoryError
    # and the job is reported as memory_limit even though the parent itself exits 0.
    r = run_hostile(
        "import os\npids = []\nfor _ in range(8):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n        block = bytearray(1 << 30)\n        os._exit(0)\n"
        "    pids.append(pid)\n"
        "print(sorted(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids))",
        memory_mb=64,
    )
    assert r.status is Status.MEMORY_LIMIT, r
    assert r.stdout == "[1, 1, 1, 1, 1, 1, 1, 1]\n", r


def test_busy_loop_hits_the_cpu_limit(run_hostile):
    r = run_hostile("while True: pass", cpu_time=1, timeout=20)
    assert r.status is Status.CPU_LIMIT, r
    assert 0.9 <= r.cpu_s < 3


def test_sleep_hits_the_wall_clock(run_hostile):
    r = run_hostile("import time\ntime.sleep(3600)", timeout=1)
    assert (r.status, r.exit_code) == (Status.TIMEOUT, -14), r
    assert r.duration_s < 1 + GRACE + 1


def test_reading_stdin_gets_end_of_file_at_once(run_hostile):
    r = run_hostile("import os, sys\nprint(repr(sys.stdin.read()), os.read(0, 10))\ninput()", timeout=5)
    assert (r.status, r.exit_code) == (Status.ERROR, 1), r
    assert r.stdout == "'' b''\n" and r.stderr.rstrip().endswith("EOFError: EOF when reading a line"), r


def test_blocking_read_on_its_own_pipe_hits_the_wall_clock(run_hostile):
    r = run_hostile("import os\nr, w = os.pipe()\nos.read(r, 1)", timeout=1)
    assert r.status is Status.TIMEOUT, r


def test_catastrophic_regex_cannot_delay_the_wall_clock(run_hostile):
    # SIGALRM's default action kills even inside a C call that never returns to Python.
    r = run_hostile("import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')", timeout=1, cpu_time=30)
    assert (r.status, r.exit_code) == (Status.TIMEOUT, -14), r
    assert r.duration_s < 1 + GRACE + 1


def test_regex_with_a_python_alarm_handler_is_killed_by_the_runner(run_hostile):
    # A Python handler cannot run until the C call returns: the runner's SIGKILL ends it.
    r = run_hostile(
        "import re, signal\nsignal.signal(signal.SIGALRM, lambda *a: None)\n"
        "re.match(r'(a+)+$', 'a' * 64 + 'b')",
        timeout=1, cpu_time=30,
    )
    assert (r.status, r.exit_code) == (Status.TIMEOUT, -9), r
    assert r.duration_s < 1 + GRACE + 1


def test_giant_integer_power_cannot_delay_the_wall_clock(run_hostile):
    r = run_hostile("x = 10 ** (10 ** 8)", timeout=1, cpu_time=30)
    assert r.status is Status.TIMEOUT, r
    assert r.duration_s < 1 + GRACE + 1


@pytest.mark.parametrize(
    "disarm",
    [
        "signal.signal(signal.SIGALRM, signal.SIG_IGN)",
        "signal.alarm(0)",
        "signal.setitimer(signal.ITIMER_REAL, 0)",
        "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])",
    ],
)
def test_disarming_the_alarm_still_times_out(run_hostile, disarm):
    r = run_hostile(f"import signal, time\n{disarm}\ntime.sleep(3600)", timeout=1)
    assert (r.status, r.exit_code) == (Status.TIMEOUT, -9), r
    assert r.duration_s < 1 + GRACE + 1


def test_catching_sigxcpu_still_hits_the_cpu_limit(run_hostile):
    r = run_hostile(
        "import signal\nsignal.signal(signal.SIGXCPU, lambda *a: print('caught', flush=True))\n"
        "while True: pass",
        cpu_time=1, timeout=20,
    )
    assert r.status is Status.CPU_LIMIT, r
    assert r.cpu_s < 3


def test_raising_rlimits_back_up_is_refused(run_hostile):
    r = run_hostile(
        "import resource\n"
        "for name in ('RLIMIT_CPU', 'RLIMIT_AS', 'RLIMIT_NPROC', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE', 'RLIMIT_CORE'):\n"
        "    which = getattr(resource, name)\n"
        "    soft, hard = resource.getrlimit(which)\n"
        "    try:\n"
        "        resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
        "        print(name, 'RAISED')\n"
        "    except (ValueError, OSError):\n"
        "        print(name, 'refused', soft == hard)\n"
        "while True: pass",
        cpu_time=1, timeout=20,
    )
    assert r.status is Status.CPU_LIMIT, r
    assert "RAISED" not in r.stdout
    assert r.stdout.count("refused True") == 6, r.stdout


def test_swallowing_base_exception_around_a_sleep_still_times_out(run_hostile):
    r = run_hostile(
        "import time\nwhile True:\n    try:\n        time.sleep(3600)\n    except BaseException:\n        pass",
        timeout=1,
    )
    assert r.status is Status.TIMEOUT, r


def test_swallowing_base_exception_around_work_still_hits_the_cpu_limit(run_hostile):
    r = run_hostile(
        "while True:\n    try:\n        while True:\n            bytearray(1 << 30)\n"
        "    except BaseException:\n        pass",
        cpu_time=1, timeout=20, memory_mb=64,
    )
    assert r.status is Status.CPU_LIMIT, r
