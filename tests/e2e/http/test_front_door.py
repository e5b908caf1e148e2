"""The front door itself, on a real uvicorn over a real Redis (no fleet needed): keys
shared by replicas and revoked without a restart, JSON errors for bad input (oversized,
chunked, slow, malformed), quotas, metrics per route, tenant and status."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from support.http_service import free_port

from warmfleet.cli.http import Service

BODY_TIMEOUT_S = 2.0


@pytest.fixture
def replicas(redis_url):
    """Two replicas of the service on one Redis, as behind a Kubernetes Service."""
    started = [Service(redis_url, ["default"], "127.0.0.1", free_port(), body_timeout_s=BODY_TIMEOUT_S)
               for _ in range(2)]
    for s in started:
        s.start()
    yield [f"http://127.0.0.1:{s.server.config.port}" for s in started], started
    for s in started:
        s.stop()


def _store(redis_url):
    from warmfleet.cli.http import _store as store

    return store(redis_url)


@pytest.mark.timeout(60)
def test_a_key_works_on_every_replica_and_stops_on_all_when_revoked(redis_url, replicas):
    from warmfleet.http.tenants import Tenant

    (a, b), _ = replicas
    store = _store(redis_url)
    key = store.add(Tenant(name="acme", pools=["default"]))
    for url in (a, b):
        for headers in ({"X-API-KEY": key}, {"Authorization": f"Bearer {key}"}):
            assert httpx.get(url + "/v2/sandboxes", headers=headers).json() == []
        assert httpx.get(url + "/v2/sandboxes", auth=("anyone", key)).status_code == 200
    key_id = store.list()[0][0]
    assert store.revoke(key_id) == 1
    for url in (a, b):  # no restart: the next request is refused
        resp = httpx.get(url + "/v2/sandboxes", headers={"X-API-KEY": key})
        assert resp.status_code == 401 and resp.json() == {"code": 401, "message": "invalid API key"}
    assert httpx.get(a + "/healthz").json() == {"status": "ok"}  # /healthz needs no key


@pytest.mark.timeout(60)
def test_bad_bodies_get_json_errors_and_slow_ones_are_cut_off(redis_url, replicas):
    from warmfleet.http.tenants import Tenant

    (a, _b), _ = replicas
    key = _store(redis_url).add(Tenant(name="acme", pools=["default"]))
    h = {"X-API-KEY": key}

    def chunks():
        for _ in range(80):
            yield b"x" * 65536  # 5 MiB with no Content-Length: counted as it arrives

    big = httpx.post(a + "/v2/sandboxes", content=chunks(), headers=h)
    assert big.status_code == 413 and big.json()["code"] == 413 and "4194304 bytes" in big.json()["message"]
    unknown = httpx.get(a + "/no/such/route", headers=h)
    assert unknown.status_code == 404 and unknown.json() == {"code": 404, "message": "not found"}
    wrong = httpx.post(a + "/v2/sandboxes", json={"templateID": ["x"]}, headers=h)
    assert wrong.status_code == 422 and "templateID" in wrong.json()["message"]
    bad_json = httpx.post(a + "/v2/sandboxes", content=b'{"templateID": ', headers={**h, "Content-Type": "application/json"})
    assert bad_json.status_code == 422 and bad_json.json()["code"] == 422
    huge_key = httpx.get(a + "/v2/sandboxes", headers={"X-API-KEY": "k" * 5000})
    assert huge_key.status_code == 401

    # Half a body, then silence: answered 408 once the body timeout passes, and closed.
    host, port = a.removeprefix("http://").split(":")
    limit_s = BODY_TIMEOUT_S
    with socket.create_connection((host, int(port)), timeout=limit_s + 20) as sock:
        sock.sendall(f"POST /v2/sandboxes HTTP/1.1\r\nHost: x\r\nX-API-KEY: {key}\r\nContent-Type: application/json\r\n"
                     "Content-Length: 100\r\n\r\n{\"templateID\"".encode())
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):  # until the server closes the connection
            answer += chunk
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408") and b'"code":408' in answer, answer[:300]
    assert limit_s - 0.5 <= waited <= limit_s + 15


@pytest.mark.timeout(60)
def test_rate_quota_and_metrics_per_route_tenant_and_status(redis_url, replicas):
    from prometheus_client import generate_latest

    from warmfleet.http.tenants import Tenant

    (a, _b), services = replicas
    key = _store(redis_url).add(Tenant(name="ratey", pools=["default"], rate_per_s=3))
    answers = [httpx.get(f"{a}/sandboxes/{'0' * 32}", headers={"X-API-KEY": key}) for _ in range(8)]
    codes = [r.status_code for r in answers]
    assert 404 in codes and 429 in codes, codes
    limited = next(r for r in answers if r.status_code == 429)
    assert "rate quota" in limited.json()["message"] and limited.headers["retry-after"] == "1"
    text = generate_latest(services[0].app.state.metrics_registry).decode()
    assert 'warmfleet_http_requests_total{route="/sandboxes/{sandbox_id}",status="404",tenant="ratey"}' in text
    assert 'status="429",tenant="ratey"' in text
    assert "0" * 32 not in text  # ids never become labels
