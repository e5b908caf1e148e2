"""Helpers for fault tests: read a pod's state, kill things inside a sandbox, poll with deadlines."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager

import redis

from warmfleet.contract import keys
from warmfleet.local.pod import SLOT_UID_BASE
from warmfleet.local.sandbox import WORKSPACE_ROOT_IN_SANDBOX
from warmfleet.contract.snapshot import PodSnapshot, SlotSnapshot, SlotState


def poll(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.02):
    """Return the predicate's first truthy value; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)  # poll with a deadline: the state lives in Redis


def snapshots(r: redis.Redis, pool: str = "default") -> dict[str, PodSnapshot]:
    ids = r.zrange(keys.pods(pool), 0, -1)
    raws = r.mget([keys.pod(pool, p) for p in ids]) if ids else []
    return {p: PodSnapshot.from_json(raw) for p, raw in zip(ids, raws) if raw}


def busy_slot(r: redis.Redis, pool: str = "default") -> tuple[str, SlotSnapshot] | None:
    for pod_id, snap in snapshots(r, pool).items():
        if snap.draining:
            continue
        for slot in snap.slot_states:
            if slot.state == SlotState.BUSY:
                return pod_id, slot
    return None


def pod_by_id(fleet, pod_id: str):
    return next(p for p in fleet.pods if p.pod_id == pod_id)


def kill_in_sandbox(fleet, pod_id: str, pid: int) -> None:
    """SIGKILL one process inside a pod's sandbox (pids are the sandbox's own)."""
    out = pod_by_id(fleet, pod_id).sandbox.exec(sys.executable, "-S", "-c", f"import os; os.kill({pid}, 9)")
    assert out.returncode == 0, out.stderr


def held_job(output: str) -> str:
    """A job that runs until the test releases it (release()), then prints `output`:
    a test that must catch it mid-run never races a sleep on a loaded machine."""
    return f"import os, time\nwhile not os.path.exists('release'): time.sleep(0.01)\nprint({output!r})"


def release(fleet, pod_id: str, slot: int) -> None:
    """Let the held job of one slot go on: its 'release' file, written as the slot's uid
    (the workspace is 0700 and the sandbox's root has no CAP_DAC_OVERRIDE)."""
    uid = SLOT_UID_BASE + slot
    path = f"{WORKSPACE_ROOT_IN_SANDBOX}/{slot}/release"
    code = f"import os; os.setgid({uid}); os.setuid({uid}); open({path!r}, 'w').close()"
    out = pod_by_id(fleet, pod_id).sandbox.exec(sys.executable, "-S", "-c", code)
    assert out.returncode == 0, out.stderr


def busy_slot_except(r: redis.Redis, pod_id: str, pool: str = "default") -> tuple[str, SlotSnapshot] | None:
    """A busy slot on any serving pod but `pod_id` (where a reclaimed job runs again)."""
    found = busy_slot(r, pool)
    return found if found is not None and found[0] != pod_id else None


@contextmanager
def env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
