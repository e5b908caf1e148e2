"""Eviction through the real kubernetes client against a local API-server look-alike."""

import random

import pytest

from gc_sidecar import k8s
from tests.gc_sidecar.fake_apiserver import FakeApiServer

PATH = "/api/v1/namespaces/warmfleet/pods/exec-1/eviction"


def test_201_evicts_with_a_policy_v1_eviction_body():
    with FakeApiServer([201]) as api:
        assert k8s.evict(k8s.api_for(api.url), "exec-1", "warmfleet") == "evicted"
    (method, path, body), = api.requests
    assert (method, path) == ("POST", PATH)
    assert body["metadata"] == {"name": "exec-1", "namespace": "warmfleet"}
    assert body.get("kind", "Eviction") == "Eviction"


def test_429_is_retried_with_backoff_then_201(caplog):
    caplog.set_level("INFO", logger="warmfleet")
    with FakeApiServer([429, 429, 201]) as api:
        out = k8s.evict(k8s.api_for(api.url), "exec-1", "warmfleet", base_delay_s=0.05, rng=random.Random(1))
    assert out == "evicted" and len(api.requests) == 3
    # The backoff each retry waited (what the retry logs): full jitter under a doubling cap.
    waits = [(r.attempt, r.delay_s) for r in caplog.records if r.getMessage().startswith("eviction blocked")]
    assert [a for a, _ in waits] == [1, 2]
    assert all(0 <= d <= 0.05 * 2 ** (a - 1) for a, d in waits), waits


def test_404_means_already_gone():
    with FakeApiServer([404]) as api:
        assert k8s.evict(k8s.api_for(api.url), "exec-1", "warmfleet") == "gone"
    assert len(api.requests) == 1


def test_a_budget_that_never_allows_it_gives_up_at_the_deadline():
    with FakeApiServer([429] * 100) as api:
        with pytest.raises(k8s.EvictionFailed, match="disruption budget"):
            k8s.evict(k8s.api_for(api.url), "exec-1", "warmfleet", deadline_s=0.5, base_delay_s=0.05)
    assert 2 <= len(api.requests) < 100


def test_forbidden_is_not_retried():
    with FakeApiServer([403, 201]) as api:
        with pytest.raises(k8s.EvictionFailed, match="403"):
            k8s.evict(k8s.api_for(api.url), "exec-1", "warmfleet")
    assert len(api.requests) == 1
