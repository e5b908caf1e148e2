"""Snippets that try to outlive their job, signal or trace the executor, or end in
every way a process can end."""

import pytest

from warmfleet.contract.schema import Status

DAEMON = """\
import os, signal, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork():
        os._exit(0)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.write(w, str(os.getpid()).encode()); os.close(w)
    while True:
        with open(os.path.join(os.environ['HOME'], 'heartbeat'), 'a') as f:
            f.write('.')
        time.sleep(0.01)
os.close(w)
print(int(os.read(r, 32)))
"""


def test_daemon_is_gone_before_the_next_job(run_hostile, hclient):
    r = run_hostile(DAEMON)  # the next-job probe asserts no process of the uid and an empty workspace
    assert r.status is Status.OK, r
    daemon = int(r.stdout)
    probe = hclient.run(
        f"import os, time\ntime.sleep(0.3)\nprint(os.path.exists('/proc/{daemon}/cmdline') and "
        f"open('/proc/{daemon}/stat').read().split(')')[1].split()[0] != 'Z', os.listdir('.'))"
    )
    assert (probe.status, probe.stdout) == (Status.OK, "False []\n"), probe


def test_signalling_the_executor_is_refused(run_hostile):
    r = run_hostile(
        "import os, signal\n"
        "ppid = os.getppid()\n"
        "for name, call in (('parent', lambda: os.kill(ppid, 9)), ('pid1', lambda: os.kill(1, 9)),\n"
        "                   ('parent-group', lambda: os.killpg(os.getpgid(ppid), 9)),\n"
        "                   ('pid1-group', lambda: os.killpg(1, 9)), ('stop-parent', lambda: os.kill(ppid, signal.SIGSTOP))):\n"
        "    try:\n"
        "        call(); print(name, 'SENT')\n"
        "    except OSError as e:\n"
        "        print(name, type(e).__name__)\n"
        "try:\n    os.kill(-1, 9)\nexcept OSError:\n    pass\n"
        "print('survived kill(-1)', flush=True)\n"
        "os.killpg(0, 9)\nprint('not reached')"
    )
    assert (r.status, r.exit_code) == (Status.ERROR, -9), r
    assert "SENT" not in r.stdout and "not reached" not in r.stdout
    assert r.stdout.count("Error") == 5 and r.stdout.endswith("survived kill(-1)\n"), r.stdout


def test_ptrace_and_reading_the_parents_memory_are_refused(run_hostile):
    r = run_hostile(
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "for pid in (os.getppid(), 1):\n"
        "    print('attach', libc.ptrace(16, pid, 0, 0), ctypes.get_errno())\n"
        "    print('seize', libc.ptrace(0x4206, pid, 0, 0), ctypes.get_errno())\n"
        "    try:\n"
        "        open(f'/proc/{pid}/mem', 'rb').read(1); print('mem READ')\n"
        "    except OSError as e:\n"
        "        print('mem', type(e).__name__)\n"
        "    buf = ctypes.create_string_buffer(64)\n"
        "    class iovec(ctypes.Structure):\n"
        "        _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]\n"
        "    local, remote = iovec(ctypes.addressof(buf), 64), iovec(0x400000, 64)\n"
        "    n = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)\n"
        "    print('vm_readv', n, ctypes.get_errno() in (1, 38))\n"
    )
    assert r.status is Status.OK, r
    lines = r.stdout.splitlines()
    assert lines.count("attach -1 1") == 2 and lines.count("seize -1 1") == 2, r.stdout
    assert lines.count("mem PermissionError") == 2, r.stdout
    assert lines.count("vm_readv -1 True") == 2, r.stdout


@pytest.mark.parametrize(
    "code, status, exit_code, stdout, stderr_ends",
    [
        ("import os\nprint('bye', flush=True)\nos._exit(7)", Status.ERROR, 7, "bye\n", ""),
        ("import sys\nsys.exit(0)", Status.OK, 0, "", ""),
        ("import sys\nsys.exit('fatal: giving up')", Status.ERROR, 1, "", "fatal: giving up\n"),
        ("raise SystemExit(300)", Status.ERROR, 300 & 0xFF, "", ""),
        ("import ctypes\nprint('before', flush=True)\nctypes.string_at(0)", Status.ERROR, -11, "before\n", ""),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGABRT)", Status.ERROR, -6, "", ""),
        ("def f():\n    f()\nf()", Status.ERROR, 1, "", "RecursionError: maximum recursion depth exceeded\n"),
    ],
    ids=["os._exit", "sys.exit0", "sys.exit-msg", "exit300", "segfault", "abort", "recursion"],
)
def test_every_way_to_end(run_hostile, code, status, exit_code, stdout, stderr_ends):
    """Each ending gives its own status and exit code, what the job printed before it, and
    what Python wrote about it: nothing at all where nothing was written (a signal's
    death, an os._exit), the message or the traceback's last line where one was."""
    r = run_hostile(code)
    assert (r.status, r.exit_code) == (status, exit_code), r
    assert r.stdout == stdout, r
    if stderr_ends:
        assert r.stderr.endswith(stderr_ends), r
    else:
        assert r.stderr == "", r


def test_recursion_past_the_c_stack_is_a_crash_not_a_fleet_problem(run_hostile):
    # Through map() every level is a C call too, so the C stack overflows: SIGSEGV.
    r = run_hostile("import sys\nsys.setrecursionlimit(10 ** 7)\ndef f(n):\n    return list(map(f, [n + 1]))\nf(0)")
    assert (r.status, r.exit_code) == (Status.ERROR, -11), r
