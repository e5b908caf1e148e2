"""The real `warmfleet` command: `up` refuses an unknown WARMFLEET_* name before starting
anything, and `config` prints the effective settings with where each came from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.timeout(60)

WARMFLEET = [sys.executable, "-m", "warmfleet.cli.main"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("WARMFLEET_")}
    return {**env, **extra}


def test_up_stops_at_once_on_a_misspelled_variable(tmp_path):
    t0 = time.monotonic()
    out = subprocess.run([*WARMFLEET, "up"], env=clean_env(WARMFLEET_SLOTZ="3", WARMFLEET_STATE_DIR=str(tmp_path)),
                         capture_output=True, text=True, timeout=30)
    took = time.monotonic() - t0
    assert out.returncode == 2, out.stderr
    assert "unknown setting WARMFLEET_SLOTZ (environment): did you mean WARMFLEET_SLOTS?" in out.stderr
    assert "ready" not in out.stdout and os.listdir(tmp_path) == []  # nothing started, nothing advertised
    print(f"\n[settings] `warmfleet up` refused WARMFLEET_SLOTZ in {took:.2f} s")


def test_config_prints_values_and_where_they_came_from(tmp_path):
    conf = tmp_path / "up.env"
    conf.write_text('WARMFLEET_PODS="3"\nWARMFLEET_REDIS_URL="redis://:hunter2@127.0.0.1:6379/0"\n')
    env = clean_env(WARMFLEET_CONFIG_FILE=str(conf), WARMFLEET_SLOTS="5")
    out = subprocess.run([*WARMFLEET, "config", "--json"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: (r["value"], r["origin"]) for r in json.loads(out.stdout)}
    assert rows["WARMFLEET_SLOTS"] == ("5", "environment")
    assert rows["WARMFLEET_PODS"] == ("3", "file")
    assert rows["WARMFLEET_DRAIN_TIMEOUT_S"] == ("330.0", "default")
    assert rows["WARMFLEET_REDIS_URL"] == ("redis://:****@127.0.0.1:6379/0", "file")
    assert "hunter2" not in out.stdout


def test_config_refuses_an_unknown_name_too():
    out = subprocess.run([*WARMFLEET, "config", "--role", "executor"], env=clean_env(WARMFLEET_METRIC_PORT="1"),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "did you mean WARMFLEET_METRICS_PORT?" in out.stderr


def test_up_print_config_shows_the_command_line_as_a_source():
    out = subprocess.run([*WARMFLEET, "up", "--slots", "4", "--print-config"], env=clean_env(WARMFLEET_PODS="2"),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
    assert rows["WARMFLEET_SLOTS"] == ["4", "command", "line"]
    assert rows["WARMFLEET_PODS"] == ["2", "environment"]
    assert rows["WARMFLEET_SANDBOX"] == ["true", "default"]


@pytest.mark.parametrize("module, env", [
    ("executor", {"WARMFLEET_REDIS_URL": "redis://127.0.0.1:1"}),
    ("gc_sidecar", {"WARMFLEET_REDIS_URL": "redis://127.0.0.1:1", "WARMFLEET_HEALTH_FILE": "/nonexistent/health.json"}),
    ("egress", {}),
])
def test_every_server_role_refuses_an_unknown_name_at_start(module, env):
    """The executor, the GC sidecar and the egress proxy stop before doing anything, with
    EX_CONFIG (78) and the closest known name."""
    out = subprocess.run([sys.executable, "-m", module], env=clean_env(WARMFLEET_SLOTZ="3", **env),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == os.EX_CONFIG, (out.stdout, out.stderr)
    assert "unknown setting WARMFLEET_SLOTZ (environment): did you mean WARMFLEET_SLOTS?" in out.stderr
