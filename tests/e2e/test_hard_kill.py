"""kill -9 of `warmfleet up` leaves nothing running: its watchdog ends the fleet's Redis
and sandboxes and removes its runtime directory; if the watchdog is gone too, the next
fleet sweeps them (warmfleet/local/watchdog.py)."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from warmfleet.local import watchdog

WARMFLEET = os.path.join(os.path.dirname(sys.executable), "warmfleet")
GONE_WITHIN_S = 30  # the watchdog needs ~1-5 s here (runsc kill + delete, then 1 s of quiet)


def start_up(state_dir) -> tuple[subprocess.Popen, dict]:
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    up = subprocess.Popen(
        [WARMFLEET, "up", "--pods", "1", "--slots", "1"],
        env={**os.environ, "WARMFLEET_STATE_DIR": str(state_dir)},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    for line in up.stdout:  # `up` prints the URL once every slot is ready
        if "WARMFLEET_REDIS_URL=" in line:
            break
    assert up.poll() is None, "warmfleet up exited"
    (path,) = glob.glob(os.path.join(state_dir, watchdog.RECORDS_DIR, "*.json"))
    with open(path) as f:
        return up, {**json.load(f), "path": path}


def sandbox_ids(record: dict) -> list[str]:
    if not os.path.isdir(record["runsc_root"]):
        return []
    out = subprocess.run([record["runsc"], "--root", record["runsc_root"], "list", "-quiet"],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.split()


def everything_gone(record: dict) -> bool:
    return (
        not any(watchdog.same_process(p) for p in record["processes"])
        and not watchdog.same_process(record["watchdog"])  # its work done, it exits
        and not sandbox_ids(record)
        and not os.path.exists(record["runtime_dir"])
        and not os.path.exists(record["path"])
    )


def wait_gone(record: dict, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if everything_gone(record):
            return True
        time.sleep(0.1)  # poll with a deadline
    return everything_gone(record)


@pytest.fixture
def bystander():
    """A process of ours that has nothing to do with the fleet: it must survive."""
    p = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield p
    p.kill()
    p.wait()


@pytest.mark.timeout(180)
def test_kill_9_of_up_ends_its_redis_sandboxes_and_state(tmp_path, bystander):
    up, record = start_up(tmp_path / "state")
    assert sandbox_ids(record) and all(watchdog.same_process(p) for p in record["processes"])
    up.kill()
    up.wait()
    assert wait_gone(record, GONE_WITHIN_S), (record, sandbox_ids(record))
    assert not os.path.exists(record["url_file"])
    assert bystander.poll() is None


@pytest.mark.timeout(180)
def test_a_fleet_whose_watchdog_died_too_is_swept_by_the_next(tmp_path, bystander):
    from warmfleet.local.fleet import LocalFleet
    from warmfleet.settings import FleetSettings

    state = tmp_path / "state"
    up, record = start_up(state)
    os.kill(record["watchdog"][0], signal.SIGKILL)
    up.kill()
    up.wait()
    # Both are gone (the watchdog's SIGKILL lands asynchronously: wait for it), so nothing
    # is left that could clean up: what the fleet made stays until the next fleet sweeps it.
    deadline = time.monotonic() + 10
    while watchdog.same_process(record["watchdog"]):
        assert time.monotonic() < deadline, "the watchdog outlived its SIGKILL"
        time.sleep(0.02)  # poll with a deadline
    assert sandbox_ids(record) and os.path.isdir(record["runtime_dir"])
    old = os.environ.get("WARMFLEET_STATE_DIR")
    os.environ["WARMFLEET_STATE_DIR"] = str(state)
    try:
        fleet = LocalFleet(FleetSettings(pods=1, slots=1, sandbox=False))
        try:
            fleet.start(ready_timeout=60)
            assert everything_gone(record), (record, sandbox_ids(record))
        finally:
            fleet.stop()
    finally:
        os.environ["WARMFLEET_STATE_DIR"] = old or ""
        if old is None:
            del os.environ["WARMFLEET_STATE_DIR"]
    assert bystander.poll() is None
    assert os.listdir(state / watchdog.RECORDS_DIR) == []
