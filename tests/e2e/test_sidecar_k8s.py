"""The Kubernetes sidecar loop against real executor supervisors (plain processes on a
real redis-server) and an API-server look-alike: drain first, then evict; 429 retried."""

import json

import pytest
import redis

from gc_sidecar import k8s
from gc_sidecar.main import Sidecar
from warmfleet.settings import RecyclePolicy
from warmfleet.settings import SidecarSettings
from tests.gc_sidecar.fake_apiserver import FakeApiServer
from warmfleet.contract import keys, probe
from warmfleet.local.fleet import LocalFleet
from warmfleet.settings import FleetSettings


@pytest.fixture(scope="module")
def plain_fleet():
    fleet = LocalFleet(FleetSettings(pods=2, slots=1, sandbox=False, drain_timeout_s=10))
    fleet.start(ready_timeout=60)
    yield fleet
    fleet.stop()


def sidecar_for(fleet, pod, api_url, **policy):
    settings = SidecarSettings(
        redis_url=fleet.client_url, pod_id=pod.pod_id, namespace="warmfleet", health_file=pod.health_path,
        probe_port=0, eviction_deadline_s=10, gc=RecyclePolicy(drain_timeout_s=15, check_s=0.1, **policy),
    )
    return Sidecar(settings, api=k8s.api_for(api_url))


@pytest.mark.timeout(90)
def test_young_pod_is_kept_old_pod_is_drained_then_evicted(plain_fleet):
    pod = plain_fleet.pods[0]
    assert probe.check_ready(probe.read(pod.health_path))[0]
    r = redis.Redis.from_url(plain_fleet.client_url, decode_responses=True)
    def drained():  # the supervisor wrote "stopped" (after its last ack), or it is gone already
        health = probe.read(pod.health_path)
        return health is None or health["stopped"] is True

    with FakeApiServer([429, 201], observe=drained) as api:
        keep = sidecar_for(plain_fleet, pod, api.url, max_age_s=3600)
        assert keep.check_once() is None and api.requests == []
        old = sidecar_for(plain_fleet, pod, api.url, max_age_s=0.01, age_jitter=0, min_serving_slots=1)
        outcome = old.check_once()
    assert outcome == "evicted"
    # Evicted only after the executor drained and deregistered, and exactly once retried.
    assert [p for _m, p, _b in api.requests] == [f"/api/v1/namespaces/warmfleet/pods/{pod.pod_id}/eviction"] * 2
    left = r.get(keys.pod("default", pod.pod_id))  # a last heartbeat can race the deregistration
    assert left is None or json.loads(left)["draining"] is True
    assert api.observed == [True, True]  # the executor had drained before each eviction call
    assert r.hget(keys.recycles("default"), "max_age") == "1"
    assert r.zcard(keys.recycle_lease("default")) == 0  # released
    r.close()


def test_floor_defers_the_recycle(plain_fleet):
    plain_fleet.wait_ready(2, 30)
    pod = plain_fleet.pods[1]
    with FakeApiServer([]) as api:
        sidecar = sidecar_for(plain_fleet, pod, api.url, max_age_s=0.01, age_jitter=0, min_serving_slots=5)
        assert sidecar.check_once() is None
    assert api.requests == []
    assert probe.check_ready(probe.read(pod.health_path))[0]  # untouched
