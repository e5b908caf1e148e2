"""The slot runner's conversation with the supervisor, driven over its real channel
(no sandbox, no uid switch: this checks ordering, not isolation)."""

import os
import sys

import psutil
import pytest

from warmfleet.contract import messages
from executor.boot import spawn_runner
from warmfleet.contract.messages import RunnerConfig


@pytest.fixture
def runner(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    cfg = RunnerConfig(
        slot=0, uid=os.getuid(), gid=os.getgid(), workspace=str(workspace), drop_privileges=False, isolate_network=False,
        output_bytes=1 << 20, file_size_bytes=1 << 20, processes=64, open_files=64,
        max_memory_mb=512, max_cpu_time=10.0, kill_grace_s=0.5, max_files=100, max_output_files_bytes=8 << 20,
    )
    spawned = spawn_runner(sys.executable, cfg)
    pid, parent = spawned.pid, spawned.sock
    chan = parent.fileno()
    try:
        assert messages.read_frame(chan)["t"] == "hello"
        yield pid, chan
    finally:
        try:
            messages.write_frame(chan, {"t": "stop"})
        except OSError:
            pass
        parent.close()
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # the test reaped it


def _job(code: str) -> dict:
    return {"t": "job", "code": code, "language": "python", "timeout": 5.0, "cpu_time": 5.0, "memory_mb": 256, "files": {}, "stream": False}


def test_next_spare_is_forked_only_after_the_supervisor_says_next(runner):
    pid, chan = runner
    for i in range(3):
        assert messages.read_frame(chan)["t"] == "ready"
        assert len(psutil.Process(pid).children()) == 1  # the spare, waiting for code
        messages.write_frame(chan, _job(f"print({i})"))
        reply = messages.read_frame(chan)
        assert (reply["t"], reply["status"], reply["stdout"]) == ("result", "ok", f"{i}\n")
        # Between the result and "next" the runner must not fork: inside gVisor a fork
        # would hold up the storing and publishing of this very result.
        assert psutil.Process(pid).children() == []
        messages.write_frame(chan, {"t": "next"})


def test_stop_after_a_result_ends_the_runner_cleanly(runner):
    pid, chan = runner
    assert messages.read_frame(chan)["t"] == "ready"
    messages.write_frame(chan, _job("print('x')"))
    assert messages.read_frame(chan)["t"] == "result"
    messages.write_frame(chan, {"t": "stop"})
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with pytest.raises(EOFError):
        messages.read_frame(chan)


def test_the_spares_rehearsal_leaves_the_job_nothing(runner):
    """The child rehearses the job path before saying ready (copy-on-write faults taken
    early): the job must still start from a clean __main__, with only its own output."""
    pid, chan = runner
    assert messages.read_frame(chan)["t"] == "ready"
    code = ("import sys, gc\n"
            "print(sorted(k for k in globals() if not k.startswith('__')), sys.stdout.tell() if sys.stdout.seekable() else '-')\n"
            "print([type(o).__name__ for o in gc.get_objects() if type(o).__name__ == 'StringIO'])")
    messages.write_frame(chan, _job(code))
    reply = messages.read_frame(chan)
    assert (reply["status"], reply["stdout"], reply["stderr"]) == ("ok", "['gc', 'sys'] -\n[]\n", "")


def test_the_job_holds_only_its_stdio_and_status_pipe(runner):
    """The child closes everything else it inherited from the runner (its channel to the
    supervisor above all) before the job runs."""
    pid, chan = runner
    assert messages.read_frame(chan)["t"] == "ready"
    code = ("import os\n"
            "fds = sorted(int(f) for f in os.listdir('/proc/self/fd'))\n"
            "print([os.readlink(f'/proc/self/fd/{f}').split(':')[0] for f in fds if os.path.exists(f'/proc/self/fd/{f}')])")
    messages.write_frame(chan, _job(code))
    reply = messages.read_frame(chan)
    assert (reply["status"], reply["stdout"]) == ("ok", "['/dev/null', 'pipe', 'pipe', 'pipe']\n"), reply
