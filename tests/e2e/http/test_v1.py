"""warmfleet's own /v1 routes through a plain HTTP client (httpx, and curl for the
streamed form), on the real fleet: jobs with the full Result, streamed NDJSON, sessions
opened, used and closed, errors as JSON {code, message}, and tenants kept apart."""

from __future__ import annotations

import base64
import json
import subprocess

import httpx
import pytest
from support.http_service import serve


@pytest.fixture(scope="module")
def service(fleet):
    with serve(fleet.client_url, key_recheck_s=0.3, keepalive_s=0.5) as s:
        s.add_tenant("alice")
        s.add_tenant("bob")
        s.add_tenant("carol")  # whose key a test revokes
        s.add_tenant("dave", max_running=0, max_sandboxes=0)  # may run nothing
        yield s


@pytest.fixture
def alice(service):
    with httpx.Client(base_url=service.url, headers={"X-API-KEY": service.keys["alice"]}, timeout=60) as c:
        yield c


@pytest.fixture
def bob(service):
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {service.keys['bob']}"},
                      timeout=60) as c:
        yield c


def _error(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"code", "message"} and body["code"] == status
    return body["message"]


@pytest.mark.timeout(60)
def test_a_job_answers_the_full_result(alice):
    resp = alice.post("/v1/jobs", json={"code": "import os\nprint(6 * 7)\nos.makedirs('out')\n"
                                                "open('out/r.txt', 'w').write(open('in.txt').read() * 2)",
                                        "files": {"in.txt": base64.b64encode(b"ab").decode()}, "timeout": 10})
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert (result["status"], result["exit_code"], result["stdout"]) == ("ok", 0, "42\n")
    assert base64.b64decode(result["files"]["r.txt"]) == b"abab"
    assert result["cpu_s"] >= 0 and result["max_rss_bytes"] > 0 and result["executor"]
    bash = alice.post("/v1/jobs", json={"code": "echo $0 >&2; exit 4", "language": "bash"}).json()
    assert (bash["status"], bash["exit_code"]) == ("error", 4)


@pytest.mark.timeout(60)
def test_budget_statuses_come_through_as_the_fleet_names_them(alice):
    busy = alice.post("/v1/jobs", json={"code": "while True: pass", "cpu_time": 1, "timeout": 20}).json()
    assert busy["status"] == "cpu_limit" and "CPU-time limit" in busy["error"]
    slow = alice.post("/v1/jobs", json={"code": "import time; time.sleep(30)", "timeout": 1}).json()
    assert slow["status"] == "timeout"


@pytest.mark.timeout(60)
def test_bad_jobs_are_json_errors_naming_the_problem(alice, service):
    assert "empty" in _error(alice.post("/v1/jobs", json={"code": "   "}), 422)
    assert "language" in _error(alice.post("/v1/jobs", json={"code": "x", "language": "cobol"}), 422)
    assert "exceeds" in _error(alice.post("/v1/jobs", json={"code": "x", "timeout": 1e6}), 422)
    assert "base64" in _error(alice.post("/v1/jobs", json={"code": "x", "files": {"a": "%%"}}), 422)
    assert "relative path" in _error(alice.post("/v1/jobs", json={"code": "x", "files": {"../a": ""}}), 422)
    assert _error(alice.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}), 422)
    assert "pool" in _error(alice.post("/v1/jobs", json={"code": "x", "pool": "gpu"}), 404)
    assert _error(httpx.post(service.url + "/v1/jobs", json={"code": "x"}), 401)
    assert "max_lifetime" in _error(alice.post("/v1/sessions", json={"max_lifetime": 10 ** 9}), 422)
    assert "idle_timeout" in _error(alice.post("/v1/sessions", json={"idle_timeout": -1}), 422)
    assert "timeout" in _error(alice.post("/v1/jobs", json={"code": "x", "timeout": "soon"}), 422)


@pytest.mark.timeout(60)
def test_a_streamed_job_sends_ndjson_lines_as_it_prints(service):
    code = "import sys, time\nprint('one', flush=True)\ntime.sleep(0.3)\nprint('two', file=sys.stderr)\n"
    done = subprocess.run(
        ["curl", "-sS", "-N", "--max-time", "50", "-H", f"X-API-KEY: {service.keys['alice']}",
         "-H", "Accept: application/x-ndjson", "-H", "Content-Type: application/json",
         "-d", json.dumps({"code": code}), service.url + "/v1/jobs"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    printed = [(line["type"], line["data"]) for line in lines if line["type"] in ("stdout", "stderr")]
    assert printed == [("stdout", "one\n"), ("stderr", "two\n")]
    assert lines[-1]["type"] == "result" and lines[-1]["result"]["status"] == "ok"
    assert lines[-1]["result"]["stdout"] == "one\n"


@pytest.mark.timeout(60)
def test_stream_true_in_the_body_streams_and_a_bad_job_is_still_a_422(alice):
    with alice.stream("POST", "/v1/jobs", json={"code": "print(1)", "stream": True}) as resp:
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in resp.iter_lines() if line]
    assert lines[-1]["result"]["stdout"] == "1\n"
    assert "empty" in _error(alice.post("/v1/jobs", json={"code": "", "stream": True}), 422)


@pytest.mark.timeout(60)
def test_a_key_revoked_mid_stream_ends_the_stream_with_an_error_line(service):
    from warmfleet.http.tenants import TenantStore
    from warmfleet.plumbing import redis_connect

    code = "import time\nprint('a', flush=True)\ntime.sleep(8)\nprint('b')"
    key = service.keys["carol"]
    with httpx.Client(base_url=service.url, headers={"X-API-KEY": key}, timeout=60) as carol, \
            carol.stream("POST", "/v1/jobs", json={"code": code, "stream": True}) as resp:
        lines = resp.iter_lines()
        first = json.loads(next(line for line in lines if '"keepalive"' not in line))
        assert first == {"type": "stdout", "data": "a\n"}
        redis = redis_connect.connect(service.redis_url, decode_responses=True)
        try:
            assert TenantStore(redis).revoke(key) == 1
        finally:
            redis.close()
        rest = [json.loads(line) for line in lines if line]
    assert rest[-1] == {"type": "error", "code": 401, "message": "the API key was revoked"}
    assert not any(line["type"] in ("stdout", "result") for line in rest)  # 'b' never came through
    assert _error(httpx.post(service.url + "/v1/jobs", headers={"X-API-KEY": key}, json={"code": "1"}), 401)


@pytest.mark.timeout(90)
def test_a_session_keeps_state_until_it_is_closed(alice):
    opened = alice.post("/v1/sessions", json={"idle_timeout": 60, "max_lifetime": 120})
    assert opened.status_code == 201, opened.text
    info = opened.json()
    assert info["pool"] == "default" and info["idle_timeout"] == 60
    sid = info["id"]
    first = alice.post(f"/v1/sessions/{sid}/run", json={"code": "x = 41", "files": {"f.txt": "aGk="}}).json()
    assert first["status"] == "ok", first
    second = alice.post(f"/v1/sessions/{sid}/run", json={"code": "print(x + 1, open('f.txt').read())"}).json()
    assert second["stdout"] == "42 hi\n"
    assert "empty" in _error(alice.post(f"/v1/sessions/{sid}/run", json={"code": " "}), 422)
    assert alice.delete(f"/v1/sessions/{sid}").status_code == 204
    assert _error(alice.post(f"/v1/sessions/{sid}/run", json={"code": "x"}), 404)
    assert _error(alice.delete(f"/v1/sessions/{sid}"), 404)


@pytest.mark.timeout(90)
def test_another_tenants_session_answers_exactly_as_an_unknown_one(alice, bob):
    sid = alice.post("/v1/sessions", json={}).json()["id"]
    try:
        for client, path, body in ((bob, f"/v1/sessions/{sid}/run", {"code": "print(1)"}),
                                   (bob, "/v1/sessions/" + "0" * 32 + "/run", {"code": "print(1)"})):
            resp = client.post(path, json=body)
            assert resp.status_code == 404
        theirs = bob.post(f"/v1/sessions/{sid}/run", json={"code": "print(1)"}).json()
        unknown = bob.post("/v1/sessions/nosuchsession/run", json={"code": "print(1)"}).json()
        assert theirs["message"].replace(sid, "ID") == unknown["message"].replace("nosuchsession", "ID")
        assert bob.delete(f"/v1/sessions/{sid}").status_code == 404
        # ... and the session is untouched: its owner still uses it.
        assert alice.post(f"/v1/sessions/{sid}/run", json={"code": "print('mine')"}).json()["stdout"] == "mine\n"
    finally:
        alice.delete(f"/v1/sessions/{sid}")


@pytest.mark.timeout(60)
def test_the_openapi_document_describes_the_v1_routes(service):
    doc = httpx.get(service.url + "/openapi.json", timeout=30).json()
    assert {"/v1/jobs", "/v1/sessions", "/v1/sessions/{session_id}/run", "/v1/sessions/{session_id}"} <= set(doc["paths"])
    job = doc["paths"]["/v1/jobs"]["post"]
    assert job["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Result")
    assert "application/x-ndjson" in job["responses"]["200"]["content"]
    assert "cpu_limit" in doc["components"]["schemas"]["Status"]["enum"]


@pytest.mark.timeout(60)
def test_over_a_quota_is_a_429_naming_it(service):
    with httpx.Client(base_url=service.url, headers={"X-API-KEY": service.keys["dave"]}, timeout=60) as dave:
        assert "max_running" in _error(dave.post("/v1/jobs", json={"code": "print(1)"}), 429)
        assert "max_running" in _error(dave.post("/v1/jobs", json={"code": "print(1)", "stream": True}), 429)
        assert "max_sandboxes" in _error(dave.post("/v1/sessions", json={}), 429)
        assert "max_running" in _error(dave.post("/run_code", json={"code": "print(1)", "language": "python"}), 429)
