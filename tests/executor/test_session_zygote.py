"""The session zygote as a plain host process (no sandbox, no uid change): it forks a
session on our descriptors, reports its exit, and is replaced after it dies or stops
answering, without harming the session it forked."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from executor.sessions.handle import SessionProcess
from executor.sessions import zygote_handle as zygote_handle
from executor.sessions.zygote_handle import SessionZygote, ZygoteGone
from warmfleet.contract.messages import Call, SessionConfig, ZygoteInit
from warmfleet.settings import ExecutorSettings

CALL = Call(code="", language="python", timeout=10.0, cpu_time=10.0, memory_mb=256)


def _cfg(workspace: str) -> SessionConfig:
    os.makedirs(workspace, mode=0o700, exist_ok=True)
    return SessionConfig(
        uid=os.getuid(), gid=os.getgid(), workspace=workspace, drop_privileges=False, isolate_network=False,
        processes=256, file_size_bytes=1 << 20, open_files=256, max_memory_mb=1024, max_files=10,
        max_output_files_bytes=1 << 20,
    )


def _exits(registry: dict):
    def on_exit(pid: int, status: int) -> None:
        proc = registry.pop(pid, None)
        if proc is not None and not proc.exited.done():
            proc.exited.set_result(status)

    return on_exit


async def _run(proc: SessionProcess, code: str) -> str:
    reply, killed_for = await proc.call(CALL.replace(code=code))
    assert reply.status == "ok" and killed_for is None, reply
    return proc.output().text("stdout")


@pytest.mark.timeout(60)
async def test_a_forked_session_runs_calls_and_its_exit_is_reported(tmp_path):
    registry: dict = {}
    zygote = SessionZygote(sys.executable, ZygoteInit(), _exits(registry))
    proc = SessionProcess(_cfg(str(tmp_path / "0")), 0.5, 1 << 16, registry)
    try:
        await proc.start(zygote)
        assert proc.pid in registry and proc.pid != zygote.pid
        assert await _run(proc, "x = 6 * 7\nprint(x)") == "42\n"
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            assert b"workspace" not in f.read()  # its cfg came over the zygote's socket
        proc.kill()
        status = await asyncio.wait_for(proc.exited, 10)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    finally:
        proc.close()
        zygote.stop()
        if zygote.pid:
            os.waitpid(zygote.pid, 0)


@pytest.mark.timeout(60)
async def test_a_dead_zygote_is_restarted_and_its_session_goes_on(tmp_path):
    registry: dict = {}
    zygote = SessionZygote(sys.executable, ZygoteInit(), _exits(registry))
    first = SessionProcess(_cfg(str(tmp_path / "0")), 0.5, 1 << 16, registry)
    second = SessionProcess(_cfg(str(tmp_path / "1")), 0.5, 1 << 16, registry)
    old = None
    try:
        await first.start(zygote)
        await _run(first, "kept = 1")
        old = zygote.pid
        os.kill(old, signal.SIGKILL)
        os.waitpid(old, 0)  # here we are the zygote's reaper (in a pod: the supervisor)
        assert zygote.reaped(old, signal.SIGKILL)
        await second.start(zygote)  # forked by a new zygote
        assert zygote.pid != old and zygote.restarts == 1
        assert await _run(first, "print(kept + 1)") == "2\n"  # a process of its own: unharmed
        assert await _run(second, "print('kept' in globals())") == "False\n"
    finally:
        for proc in (first, second):  # both orphans once their zygote is gone: not ours to reap
            proc.kill()
            proc.close()
        zygote.stop()
        if zygote.pid not in (None, old):
            os.waitpid(zygote.pid, 0)

@pytest.mark.timeout(60)
async def test_a_stuck_zygote_is_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(zygote_handle, "SPAWN_TIMEOUT_S", 1.0)
    registry: dict = {}
    zygote = SessionZygote(sys.executable, ZygoteInit(), _exits(registry))
    stuck = SessionProcess(_cfg(str(tmp_path / "0")), 0.5, 1 << 16, registry)
    fresh = SessionProcess(_cfg(str(tmp_path / "1")), 0.5, 1 << 16, registry)
    await zygote.ensure()
    old = zygote.pid
    try:
        os.kill(old, signal.SIGSTOP)
        with pytest.raises(ZygoteGone, match="did not answer"):
            await stuck.start(zygote)
        os.waitpid(old, 0)  # it was killed
        await fresh.start(zygote)
        assert zygote.pid != old and await _run(fresh, "print(3)") == "3\n"
    finally:
        for proc in (stuck, fresh):
            proc.kill()
            proc.close()
        zygote.stop()
        if zygote.pid != old:
            os.waitpid(zygote.pid, 0)


def test_session_preload_off_gives_a_lean_zygote():
    on = SessionZygote.for_pod(ExecutorSettings(redis_url="unix:///x", preload=["json"], job_path=["/x"]), lambda pid, status: None)
    off = SessionZygote.for_pod(ExecutorSettings(redis_url="unix:///x", preload=["json"], job_path=["/x"], session_preload=False),
                                lambda pid, status: None)
    assert (on.init.preload, off.init.preload) == (["json"], [])
    assert on.init.job_path == off.init.job_path == ["/x"]


@pytest.mark.timeout(60)
async def test_a_lean_zygote_waits_for_the_first_session_a_preloading_one_starts_at_once(tmp_path):
    # A pod that never holds a session should not pay a lean zygote's memory; a preload
    # takes seconds, so that one starts ahead of the first open.
    registry: dict = {}
    lean = SessionZygote(sys.executable, ZygoteInit(), _exits(registry))
    eager = SessionZygote(sys.executable, ZygoteInit(preload=["json"]), _exits(registry))
    tasks = [asyncio.create_task(z.run()) for z in (lean, eager)]
    proc = SessionProcess(_cfg(str(tmp_path / "0")), 0.5, 1 << 16, registry)
    try:
        await asyncio.wait_for(eager.ensure(), 30)  # already starting: this only waits for it
        assert eager.pid is not None and eager.restarts == 0
        assert lean.pid is None
        await proc.start(lean)
        assert lean.pid is not None and await _run(proc, "print(1)") == "1\n"
    finally:
        proc.kill()
        proc.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for z in (lean, eager):
            if z.pid:
                os.waitpid(z.pid, 0)
