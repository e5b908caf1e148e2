"""Three pools on a real 3-primary Redis Cluster, each served by a local fleet of runsc
pods (which reach every cluster node through per-node relay sockets)."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from dispatcher import Client
from warmfleet.contract import keys
from warmfleet.plumbing import redis_connect
from warmfleet.local.fleet import LocalFleet
from warmfleet.settings import FleetSettings
from support.redis_topologies import ClusterOf3
from warmfleet.contract.schema import Status

POOLS = ("default", "data-analysis", "p3")
JOBS_PER_POOL = 12


@pytest.fixture(scope="module")
def cluster():
    c = ClusterOf3().start()
    yield c
    c.stop()


def keys_by_node(cluster: ClusterOf3) -> dict[int, list[str]]:
    import redis

    return {port: list(redis.Redis(host="127.0.0.1", port=port, decode_responses=True).scan_iter(count=1000))
            for port in cluster.ports}


@pytest.mark.timeout(420)
def test_three_pools_on_a_cluster_are_answered_each_in_one_slot(cluster):
    admin = redis_connect.connect(cluster.url, decode_responses=True)
    for pool in POOLS:
        admin.xgroup_create(keys.stream(pool), keys.CONSUMER_GROUP, id="0", mkstream=True)
    clients = {pool: Client(cluster.url, pool=pool) for pool in POOLS}
    fleets: list[LocalFleet] = []
    try:
        # A backlog before any executor exists: the lag KEDA reads must count it exactly.
        ids = {pool: [clients[pool].submit(f"print('{pool}', {i})") for i in range(JOBS_PER_POOL)] for pool in POOLS}
        for pool in POOLS:
            (group,) = admin.xinfo_groups(keys.stream(pool))
            assert group["lag"] == JOBS_PER_POOL and group["pending"] == 0

        for pool in POOLS:
            fleet = LocalFleet(FleetSettings(pods=1, slots=2, redis_url=cluster.url, pool=pool, drain_timeout_s=20))
            fleets.append(fleet)
            fleet.start(ready_timeout=120)
        for pool in POOLS:
            results = [clients[pool].wait(j, timeout=120) for j in ids[pool]]
            assert [r.status for r in results] == [Status.OK] * JOBS_PER_POOL, [r.error for r in results]
            assert [r.stdout for r in results] == [f"{pool} {i}\n" for i in range(JOBS_PER_POOL)]
            # and a job through the warm fleet, with the pub/sub answer crossing the cluster
            assert clients[pool].run("print(6 * 7)").stdout == "42\n"
            (group,) = admin.xinfo_groups(keys.stream(pool))
            assert group["lag"] == 0 and group["pending"] == 0

        # Every key a pool wrote lives in the one slot of its hash tag, on the node serving it.
        owner = {pool: admin.get_node_from_key(keys.stream(pool)).port for pool in POOLS}
        seen: dict[str, set[int]] = {pool: set() for pool in POOLS}
        for port, names in keys_by_node(cluster).items():
            for name in names:
                pool = name.split("{", 1)[1].split("}", 1)[0]
                assert name.startswith(f"warmfleet:{{{pool}}}:") and port == owner[pool], (name, port)
                seen[pool].add(key_slot(name.encode()))
        for pool in POOLS:
            assert seen[pool] == {key_slot(keys.hash_tag(pool).encode())}
        assert len(set(owner.values())) == 3  # the pools spread over the shards (slots 5718, 14690, 3689)
    finally:
        for fleet in fleets:
            fleet.stop()
        for c in clients.values():
            c.close()
        admin.close()
