"""warmfleet.plumbing.redis_connect: every URL form parsed, bad ones refused with a clear error,
and the connections each form makes (Sentinel and Cluster against real servers in
tests/e2e/test_redis_cluster.py and test_redis_sentinel.py)."""

from __future__ import annotations

import pytest

from warmfleet.plumbing import redis_connect


def test_single_server_urls_pass_through():
    for url in ("redis://h:6379/2", "rediss://u:p@h:6380/0", "unix:///run/redis.sock?db=1"):
        assert redis_connect.parse(url).kind == "single"


def test_sentinel_url_with_password_several_sentinels_service_and_db():
    t = redis_connect.parse("redis+sentinel://:s%40cret@10.0.0.1:26379,10.0.0.2,[::1]:5000/mymaster/3"
                            "?sentinel_password=x")
    assert (t.kind, t.service, t.db, t.password, t.username) == ("sentinel", "mymaster", 3, "s@cret", None)
    assert t.nodes == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 5000))
    assert t.options == {"sentinel_password": "x"}
    assert redis_connect.parse("redis+sentinel://u:p@h:1/svc").db == 0


def test_cluster_url_with_user_nodes_and_relay_dir():
    t = redis_connect.parse("redis+cluster://app:pw@n1:7000,n2:7001?relay_dir=/run")
    assert (t.kind, t.username, t.password, t.nodes) == ("cluster", "app", "pw", (("n1", 7000), ("n2", 7001)))
    assert redis_connect.relay_socket("/run", "n1", 7000) == "/run/node-n1-7000.sock"


@pytest.mark.parametrize("url, says", [
    ("http://h:1", "unsupported Redis URL scheme"),
    ("localhost:6379", "not a Redis URL"),
    ("redis+sentinel://h:26379", "SERVICE"),
    ("redis+sentinel://h:26379/svc/db/x", "SERVICE"),
    ("redis+sentinel://h:26379/svc/one", "bad db"),
    ("redis+sentinel:///svc", "no host:port"),
    ("redis+cluster://h:7000/2", "no path"),
    ("redis+cluster://h:port", "bad host:port"),
])
def test_bad_urls_are_refused_naming_the_problem(url, says):
    with pytest.raises(ValueError, match=says):
        redis_connect.parse(url)
