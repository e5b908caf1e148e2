"""Every status, produced by a real snippet in a real runsc sandbox."""

from warmfleet.contract.schema import FleetLimits, Status


def test_runs_under_gvisor(client):
    r = client.run('print(open("/proc/version").read())')
    assert r.status is Status.OK, r
    assert "Linux version 4.4.0" in r.stdout  # the Sentry's kernel, not the host's
    assert r.exit_code == 0 and r.error is None
    assert r.duration_s > 0 and r.cpu_s > 0 and r.max_rss_bytes > 1 << 20
    assert r.executor.endswith(("/0", "/1"))


def test_nonzero_exit_is_error(client):
    r = client.run("import sys; print('out'); sys.exit(3)")
    assert (r.status, r.exit_code, r.stdout) == (Status.ERROR, 3, "out\n")


def test_uncaught_exception_is_error_with_traceback(client):
    r = client.run("def f():\n    raise ValueError('boom')\nf()")
    assert r.status is Status.ERROR and r.exit_code == 1
    assert 'File "<job>", line 2, in f' in r.stderr
    assert r.stderr.rstrip().endswith("ValueError: boom")
    assert "executor" not in r.stderr  # no harness frames


def test_syntax_error_is_error(client):
    r = client.run("def (:")
    assert r.status is Status.ERROR and "SyntaxError" in r.stderr


def test_busy_loop_hits_cpu_limit(client):
    r = client.run("while True: pass", cpu_time=1, timeout=20)
    assert r.status is Status.CPU_LIMIT, r
    assert 0.9 <= r.cpu_s < 3


def test_sleep_hits_wall_clock(client):
    r = client.run("import time; time.sleep(60)", timeout=1)
    assert r.status is Status.TIMEOUT, r
    assert 0.9 <= r.duration_s < 3


def test_ignoring_sigalrm_still_times_out(client):
    r = client.run("import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(60)", timeout=1)
    assert r.status is Status.TIMEOUT and r.exit_code == -9, r
    assert r.duration_s < 3


def test_big_allocation_hits_memory_limit(client):
    r = client.run("x = bytearray(1 << 30)\nprint('allocated')", memory_mb=256)
    assert r.status is Status.MEMORY_LIMIT, r
    assert "MemoryError" in r.stderr and "allocated" not in r.stdout


def test_output_flood_hits_output_limit(client):
    r = client.run("while True: print('x' * 4096)")
    assert r.status is Status.OUTPUT_LIMIT, r
    assert r.stdout_truncated and not r.stderr_truncated
    assert len(r.stdout.encode()) == FleetLimits().output_bytes


def test_stderr_flood_is_capped_too(client):
    r = client.run("import sys\nwhile True: sys.stderr.write('e' * 4096)")
    assert r.status is Status.OUTPUT_LIMIT and r.stderr_truncated


def test_job_imports_stdlib_modules_as_the_job_user(client):
    r = client.run(
        "import os, decimal, fractions, statistics, csv, sqlite3, subprocess\n"
        "print(os.getuid(), statistics.mean([1, 2, 3]), decimal.Decimal('1.5') * 2)"
    )
    assert r.status is Status.OK, r.stderr
    uid, mean, dec = r.stdout.split()
    assert int(uid) >= 1000 and uid != "0"
    assert (mean, dec) == ("2", "3.0")


def test_queue_wait_is_reported(client):
    r = client.run("print(1)")
    assert 0 <= r.queue_wait_s < 5


def test_cpu_budget_covers_the_whole_process_tree(client):
    """RLIMIT_CPU is per process (and gVisor skips it for forked children): the runner
    weighs the job's whole tree, including a setsid escapee."""
    r = client.run(
        "import os, time\n"
        "for escape in (False, True):\n"
        "    if os.fork() == 0:\n"
        "        if escape: os.setsid()\n"
        "        while True: pass\n"
        "time.sleep(60)",
        cpu_time=1,
        timeout=30,
    )
    assert r.status is Status.CPU_LIMIT, r
    assert r.duration_s < 5 and r.cpu_s > 1


def test_memory_budget_covers_the_whole_process_tree(client):
    """RLIMIT_AS is per process: eight children of 60 MiB each stay under it one by one,
    but together they are well over the job's 128 MiB."""
    r = client.run(
        "import os, time\n"
        "for _ in range(8):\n"
        "    if os.fork() == 0:\n"
        "        x = bytearray(60 << 20)\n"
        "        for i in range(0, len(x), 4096): x[i] = 1\n"
        "        time.sleep(30); os._exit(0)\n"
        "time.sleep(30)",
        memory_mb=128,
        timeout=20,
    )
    assert r.status is Status.MEMORY_LIMIT, r
    assert r.duration_s < 10


def test_forked_workers_sharing_the_parents_pages_are_not_counted_twice(client):
    """A pool forked after loading data shares those pages: it must not look like N copies."""
    r = client.run(
        "import os, time\n"
        "data = bytearray(80 << 20)\n"
        "for i in range(0, len(data), 4096): data[i] = 1\n"
        "pids = []\n"
        "for _ in range(4):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        time.sleep(1.0); os._exit(sum(data[::1 << 20]) and 0)\n"
        "    pids.append(pid)\n"
        "print(sum(os.waitpid(p, 0)[1] for p in pids))",
        memory_mb=200,
        timeout=20,
    )
    assert (r.status, r.stdout) == (Status.OK, "0\n"), r
