"""A local pod's settings file is written from the tree: what `warmfleet up` was given for
the executor, then what the fleet decides per pod; the pod's executor reads it back as
written (through the same loader), and nothing of `up`'s own files and state goes along."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from warmfleet.local.pod import Pod
from warmfleet.settings import CONFIG_FILE, POD_FIELDS, ExecutorSettings, FleetSettings, Origin, load, origins, set_values

pytestmark = pytest.mark.timeout(30)


def test_a_pod_reads_back_what_up_was_given_and_what_the_fleet_decided(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("WARMFLEET_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WARMFLEET_RECLAIM_IDLE_S", "7")
    monkeypatch.setenv("WARMFLEET_LIMITS__MAX_TIMEOUT", "60")
    monkeypatch.setenv("WARMFLEET_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("WARMFLEET_WORKSPACE_ROOT", "/elsewhere")  # the fleet decides this one
    up = load(FleetSettings, {"slots": 3, "sandbox": False, "drain_timeout_s": 20, "preload": ["json"]})
    fleet = SimpleNamespace(
        settings=up, executor_values=set_values(up, POD_FIELDS), runtime_dir=str(tmp_path), socket_dir=str(tmp_path),
        egress=None, job_env=None, sandbox_runtime="none", sandbox_version="", sandbox_platform="",
    )
    pod = Pod(fleet, 0)
    name = pod.settings_file("unix:///run/redis.sock", "/ws", 61000, "/ss")
    path = tmp_path / name
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    for var in list(os.environ):  # the pod's environment: the file's name, nothing else of ours
        if var.startswith("WARMFLEET_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv(CONFIG_FILE, str(path))
    pod_settings = load(ExecutorSettings)
    assert (pod_settings.slots, pod_settings.reclaim_idle_s, pod_settings.limits.max_timeout) == (3, 7.0, 60.0)
    assert (pod_settings.drain_timeout_s, pod_settings.preload, pod_settings.workspace_root) == (20.0, ["json"], "/ws")
    assert pod_settings.pod_id == pod.pod_id and pod_settings.redis_url == "unix:///run/redis.sock"
    assert pod_settings.health_file == os.path.join(str(tmp_path), pod.health_name)
    assert pod_settings.state_dir is None  # `up`'s own state stays with `up`
    where = origins(pod_settings)
    assert where["WARMFLEET_RECLAIM_IDLE_S"] is Origin.FILE and where["WARMFLEET_PYTHON"] is Origin.DEFAULT
    assert "WARMFLEET_STATE_DIR" not in path.read_text()
