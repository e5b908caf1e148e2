"""`python -m executor` start-up errors end with EX_CONFIG and a clear log line."""

import json
import os
import subprocess
import sys

from executor.exitcodes import ExitCode


def _run_executor(tmp_path, **settings: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **{f"WARMFLEET_{k.upper()}": v for k, v in settings.items()}}
    return subprocess.run(
        [sys.executable, "-m", "executor"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def _events(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_invalid_settings_exit_with_ex_config(tmp_path):
    proc = _run_executor(tmp_path, redis_url="unix:///nowhere.sock", slots="0")
    assert proc.returncode == ExitCode.CONFIG == 78
    assert any(e["event"] == "invalid settings" for e in _events(proc.stderr)), proc.stderr


def test_a_missing_interpreter_for_the_runners_is_a_config_error(tmp_path):
    proc = _run_executor(
        tmp_path, redis_url="unix:///nowhere.sock", python=str(tmp_path / "no-python"),
        workspace_root=str(tmp_path / "ws"), drop_privileges="false", metrics_port="0",
    )
    assert proc.returncode == ExitCode.CONFIG, proc.stderr
    errors = [e for e in _events(proc.stderr) if e["event"] == "cannot start the slot runners"]
    assert errors and "no-python" in errors[0]["python"], proc.stderr
