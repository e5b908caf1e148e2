"""The E2B sandbox reaper with an injectable clock, on a real Redis, with a stand-in for
the fleet's sessions (the reaper closes them through the client; closing is the pod's
work, tested with the pods). Two replicas share the work: each sandbox is closed once."""

from __future__ import annotations

import redis.asyncio as aioredis

from warmfleet.contract import keys
from warmfleet.http.e2b.sandboxes import SandboxRecord, Sandboxes
from warmfleet.http.quotas import Quotas
from warmfleet.http.settings import http_settings
from warmfleet.http.tenants import Tenant


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class StandInFleet:
    """What the reaper needs of warmfleet.http.fleet.Fleet: client(pool).session(id=).close()."""

    def __init__(self) -> None:
        self.closed: list[str] = []

    def client(self, pool):
        fleet = self

        class Client:
            def session(self, id):
                class Session:
                    async def close(self, wait):
                        fleet.closed.append(id)

                return Session()

        return Client()


async def test_sandboxes_end_at_their_time_once_across_replicas(redis_url):
    r = aioredis.from_url(redis_url)
    clock = Clock(1000.0)
    fleet = StandInFleet()
    replicas = [Sandboxes(r, fleet, Quotas(r, clock), http_settings(redis_url=redis_url), clock) for _ in range(2)]
    tenant = Tenant(name="t", pools=["default"], max_sandboxes=500)
    for i in range(300):  # opened and abandoned: only their lifetime ends them
        await replicas[0].quotas.reserve_sandbox(tenant, f"s{i}", 1000.0 + 60 + i % 2 * 600)
        await replicas[0].save(SandboxRecord(sandbox_id=f"s{i}", tenant="t", pool="default", template_id="base",
                                             access_token="tok", started_at=1000.0, end_at=1000.0 + 60 + i % 2 * 600))
    assert await replicas[1].reap() == 0  # nothing is due yet
    assert len(await replicas[0].list(tenant)) == 300
    clock.now = 1000.0 + 61
    assert await replicas[0].get(tenant, "s0") is None  # past its end: gone at once, whoever asks
    reaped = 0
    while (n := await replicas[0].reap() + await replicas[1].reap()) > 0:
        reaped += n
    assert reaped == 150 and sorted(fleet.closed) == sorted(f"s{i}" for i in range(0, 300, 2))
    assert len(set(fleet.closed)) == 150  # each closed once
    assert not await r.exists(keys.http_sandbox("s0"))
    assert len(await replicas[1].list(tenant)) == 150
    assert await r.zcard(keys.tenant_sandboxes("t")) == 150  # their quota places came back
    await r.aclose()
