"""`warmfleet keys` against a real Redis, and `warmfleet up --http`: the lines it prints
are all the E2B SDK needs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

WARMFLEET = os.path.join(os.path.dirname(sys.executable), "warmfleet")


def _keys(redis_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([WARMFLEET, "keys", "--redis-url", redis_url, *args], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.timeout(60)
def test_keys_add_list_revoke_and_only_hashes_are_stored(redis_url):
    import redis

    from warmfleet.contract import keys as rkeys

    added = _keys(redis_url, "add", "--tenant", "acme", "--pools", "default,gpu", "--max-sandboxes", "5",
                  "--max-running", "2", "--rate", "10/s")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert key.startswith("wf_") and len(key) > 40 and "shown only now" in added.stderr
    stored = redis.Redis.from_url(redis_url, decode_responses=True).hgetall(rkeys.api_keys())
    assert len(stored) == 1 and key not in str(stored) and '"rate_per_s":10.0' in next(iter(stored.values()))
    listed = _keys(redis_url, "list")
    assert "acme" in listed.stdout and "max_sandboxes=5" in listed.stdout and key not in listed.stdout
    key_id = listed.stdout.split()[0]
    assert _keys(redis_url, "revoke", key_id).returncode == 0
    assert _keys(redis_url, "revoke", key).returncode == 1  # already gone
    bad = _keys(redis_url, "add", "--tenant", "x", "--pools", "Bad Pool!")
    assert bad.returncode == 2 and "pool" in bad.stderr


@pytest.mark.timeout(180)
def test_up_http_prints_the_exports_the_e2b_sdk_needs(tmp_path):
    env = {**os.environ, "WARMFLEET_STATE_DIR": str(tmp_path / "state")}
    refused = subprocess.run([WARMFLEET, "up", "--http", "0.0.0.0:0"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2 and "non-loopback" in refused.stderr
    from support.http_service import free_port

    port = free_port()
    up = subprocess.Popen([WARMFLEET, "up", "--pods", "1", "--slots", "1", "--http", f"127.0.0.1:{port}"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        exports = None
        for line in up.stdout:  # readiness signal: the export line comes once the service listens
            if line.startswith("export E2B_API_URL="):
                exports = dict(part.split("=", 1) for part in line.split()[1:])
                break
        assert exports, up.stderr.read() if up.poll() is not None else "no export line"
        assert exports["E2B_API_URL"] == exports["E2B_SANDBOX_URL"] == f"http://127.0.0.1:{port}"
        code = ("from e2b_code_interpreter import Sandbox\n"
                "with Sandbox.create() as s:\n"
                "    print(s.run_code('print(6 * 7)').logs.stdout)\n")
        run = subprocess.run([sys.executable, "-c", code], env={**env, **exports}, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0 and "42" in run.stdout, run.stderr
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0, up.stderr.read()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


@pytest.mark.timeout(60)
def test_serve_reads_the_settings_tree_and_serves_metrics_apart(redis_url, tmp_path):
    import httpx
    from support.fleet_faults import poll
    from support.http_service import free_port

    env = {**os.environ, "WARMFLEET_STATE_DIR": str(tmp_path / "state"), "WARMFLEET_HTTP_MAXBODY": "1"}
    refused = subprocess.run([WARMFLEET, "serve", "--redis-url", redis_url], env=env, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2 and "WARMFLEET_HTTP_MAXBODY" in refused.stderr  # a misspelt name is refused
    port, metrics = free_port(), free_port()
    env = {**env, "WARMFLEET_HTTP_MAX_BODY_BYTES": "2048"}
    del env["WARMFLEET_HTTP_MAXBODY"]
    serve = subprocess.Popen([WARMFLEET, "serve", "--redis-url", redis_url, "--listen", f"127.0.0.1:{port}",
                              "--metrics-port", str(metrics)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        poll(up, 30, "serve answers /healthz")
        big = httpx.post(url + "/v2/sandboxes", content=b"x" * 4096, headers={"X-API-KEY": "wf_x"})
        assert big.status_code == 413 and "2048 bytes" in big.json()["message"]  # the setting from the environment
        scraped = httpx.get(f"http://127.0.0.1:{metrics}/metrics").text
        assert 'warmfleet_http_requests_total{route="unmatched",status="413",tenant=""}' in scraped  # refused before routing
        assert httpx.get(url + "/metrics").status_code == 404  # not on the tenants' port
    finally:
        serve.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit says why
        assert serve.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Traceback" not in serve.stderr.read()
