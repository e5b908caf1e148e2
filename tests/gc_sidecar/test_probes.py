"""`warmfleet probe live|ready` and the sidecar's HTTP probes, over health files."""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from gc_sidecar import health_server
from warmfleet.contract import probe


def state(**kw):
    return {"pod_id": "p", "slots": 2, "ready": 1, "busy": 1, "draining": False, "redis_ok_at": time.time(), **kw}


def test_checks():
    now = time.time()
    assert probe.check_live(None)[0] is False
    assert probe.check_live({**state(), "ts": now})[0]
    assert probe.check_live({**state(), "ts": now - 60})[0] is False  # stuck loop
    assert probe.check_ready({**state(), "ts": now})[0]
    assert probe.check_ready({**state(redis_ok_at=now - 60), "ts": now})[0] is False  # Redis gone: live, not ready
    assert probe.check_live({**state(redis_ok_at=None), "ts": now})[0]
    assert probe.check_ready({**state(draining=True), "ts": now})[0] is False
    assert probe.check_ready({**state(ready=0), "ts": now})[0] is False
    assert probe.check_live({**state(stopped=True), "ts": now})[0] is False


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "warmfleet.cli.main", "probe", *args], capture_output=True, text=True,
                          timeout=30)


def test_cli_exit_codes_follow_the_file(tmp_path):
    path = str(tmp_path / "health.json")
    assert run_cli("live", "--file", path).returncode == 1
    probe.write(path, state())
    assert run_cli("live", "--file", path).returncode == 0
    assert run_cli("ready", "--file", path).returncode == 0
    probe.write(path, state(draining=True))
    out = run_cli("ready", "--file", path)
    assert out.returncode == 1 and "draining" in out.stderr
    data = json.load(open(path))
    data["ts"] -= 120
    json.dump(data, open(path, "w"))
    assert run_cli("live", "--file", path, "--stale-s", "30").returncode == 1


def test_probe_module_loads_only_the_standard_library(tmp_path):
    """The liveness probe is exec'd every period: it must answer without importing the
    third-party stack (its speed is `warmfleet bench`'s business, not a timed test)."""
    path = str(tmp_path / "health.json")
    probe.write(path, state())
    code = ("import sys; before = set(sys.modules); import warmfleet.contract.probe as p; "
            "rc = p.main(['live', '--file', %r, '--quiet']); "
            "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before}))); sys.exit(rc)" % path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    loaded = set(out.stdout.split())  # what importing and running the probe added
    assert "warmfleet" in loaded
    assert loaded - {"warmfleet"} <= set(sys.stdlib_module_names) | set(sys.builtin_module_names), \
        sorted(loaded - {"warmfleet"} - set(sys.stdlib_module_names) - set(sys.builtin_module_names))


@pytest.fixture
def server(tmp_path):
    path = str(tmp_path / "health.json")
    srv = health_server.make_server("127.0.0.1", 0, path)
    health_server.serve_in_background(srv)
    yield path, f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_http_probes(server):
    path, base = server
    assert get(base + "/livez")[0] == 503
    probe.write(path, state())
    assert get(base + "/livez")[0] == 200
    assert get(base + "/readyz")[0] == 200
    probe.write(path, state(ready=0))
    code, body = get(base + "/readyz")
    assert code == 503 and "spare" in body
    code, body = get(base + "/metrics")
    assert code == 200 and "warmfleet_gc_recycles" in body
    assert get(base + "/nope")[0] == 404


def test_health_file_is_readable_by_the_sidecar_and_its_directory_not_writable_by_jobs(tmp_path):
    import os
    import stat

    d = tmp_path / "health"
    d.mkdir()
    os.chmod(d, 0o777)  # as an emptyDir comes
    probe.write(str(d / "health.json"), state())
    assert stat.S_IMODE(os.stat(d / "health.json").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(d).st_mode) & 0o022 == 0
