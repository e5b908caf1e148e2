"""The watchdog's clean-up acts on recorded ids only: a recorded process is killed, a
reused pid (same number, another start time) and everything else are left alone."""

import os
import subprocess

import pytest

from warmfleet.local import watchdog


def sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "600"], start_new_session=True)


@pytest.mark.timeout(60)
def test_clean_up_kills_what_is_recorded_and_nothing_else(tmp_path, monkeypatch):
    # Only quiet (nothing found for QUIET_S) can end the clean-up here, never its
    # give-up deadline: a clean-up that keeps finding things runs into the test's timeout.
    monkeypatch.setattr(watchdog, "GIVE_UP_S", 3600.0)
    recorded, bystander, reused = sleeper(), sleeper(), sleeper()
    runtime = tmp_path / "warmfleet-test"
    (runtime / "sock").mkdir(parents=True)
    url_file, other_url_file = tmp_path / "redis-url", tmp_path / "other-url"
    url_file.write_text("unix:///ours")
    path = str(tmp_path / "fleet.json")
    stale = [reused.pid, watchdog.start_time(reused.pid) - 1]  # the pid now belongs to someone else
    try:
        watchdog.write_record(path, {
            "owner": [999999, 1], "runtime_dir": str(runtime), "runsc": "", "runsc_root": "",
            "processes": [watchdog.identity(recorded.pid), stale], "url_file": str(url_file), "url": "unix:///ours",
        })
        assert watchdog.clean_up(path) is True
        assert recorded.wait(5) == -9
        assert bystander.poll() is None and reused.poll() is None
        assert not runtime.exists() and not url_file.exists() and not os.path.exists(path)
        assert watchdog.clean_up(path) is False  # nothing recorded any more
        # A URL that is no longer ours stays advertised.
        other_url_file.write_text("unix:///someone-else")
        watchdog.write_record(path, {"runtime_dir": str(runtime), "url_file": str(other_url_file), "url": "unix:///ours"})
        watchdog.clean_up(path)
        assert other_url_file.read_text() == "unix:///someone-else"
    finally:
        for p in (recorded, bystander, reused):
            p.kill()
            p.wait()


def test_sweep_skips_fleets_whose_owner_lives(tmp_path):
    records = tmp_path / "fleets"
    records.mkdir()
    mine = tmp_path / "warmfleet-live"
    mine.mkdir()
    dead = tmp_path / "warmfleet-dead"
    dead.mkdir()
    watchdog.write_record(str(records / "live.json"), {"owner": watchdog.identity(os.getpid()), "runtime_dir": str(mine)})
    watchdog.write_record(str(records / "dead.json"), {"owner": [os.getpid(), 1], "runtime_dir": str(dead)})
    assert watchdog.sweep(str(records)) == [str(dead)]
    assert mine.exists() and not dead.exists() and os.listdir(records) == ["live.json"]
