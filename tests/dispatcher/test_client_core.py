"""Client and AsyncClient decisions and round trips, on warmfleet.testing's stand-in
fleet (fakeredis, plain subprocesses): budgets and pool defaults, and waits that take
results from pub/sub without reading stored results. No sandbox here, and no claim
about one: this checks the clients, not the fleet."""

from __future__ import annotations

import pytest

import dispatcher
import warmfleet
from dispatcher import AsyncClient, Client
from warmfleet.contract import keys
from warmfleet.contract.schema import FleetLimits, Status
from warmfleet.testing import StandInFleet

pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore::warmfleet.testing.NotIsolatedWarning")]


@pytest.fixture
def quiet_recheck(monkeypatch):
    """The safety-net re-read of stored results (recheck_s) far off: a wait that reads
    them anyway does so because the client decided to, not because a job was slow."""
    monkeypatch.setenv("WARMFLEET_RECHECK_S", "60")


def count_mgets(monkeypatch, client) -> list[int]:
    calls = [0]
    mget = client.redis.mget

    def counted(*args, **kwargs):
        calls[0] += 1
        return mget(*args, **kwargs)

    monkeypatch.setattr(client.redis, "mget", counted)
    return calls


def test_budgets_left_out_are_the_fleets_published_defaults():
    with StandInFleet(slots=1, limits=FleetLimits(timeout=7.0, cpu_time=3.0, memory_mb=64)) as fleet:
        with fleet.client() as c:
            assert c.run("print(1)").ok
    job = fleet.jobs[0]
    assert (job.language, job.timeout, job.cpu_time, job.memory_mb) == ("python", 7.0, 3.0, 64)


async def test_async_budgets_left_out_are_the_fleets_published_defaults():
    with StandInFleet(slots=1, limits=FleetLimits(timeout=8.0, cpu_time=2.0, memory_mb=96)) as fleet:
        async with fleet.async_client() as c:
            assert (await c.run("print(1)", memory_mb=128)).ok
    job = fleet.jobs[0]
    assert (job.timeout, job.cpu_time, job.memory_mb) == (8.0, 2.0, 128)


def test_without_published_limits_the_defaults_are_fleetlimits():
    with StandInFleet(slots=1, limits=FleetLimits(timeout=5.0)) as fleet:
        fleet.connection().delete(keys.limits(fleet.pool))
        with fleet.client() as c:
            assert c.run("print(1)").ok
    job, defaults = fleet.jobs[0], FleetLimits()
    assert (job.timeout, job.cpu_time, job.memory_mb) == (defaults.timeout, defaults.cpu_time, defaults.memory_mb)


async def test_the_pool_comes_from_warmfleet_pool(monkeypatch):
    monkeypatch.setenv("WARMFLEET_POOL", "other")
    with StandInFleet("other", slots=1) as fleet:
        with Client(redis=fleet.connection()) as c:
            assert c.pool == "other" and c.run("print(1)").stdout == "1\n"
        async with AsyncClient(redis=fleet.async_connection()) as ac:
            assert ac.pool == "other" and (await ac.run("print(2)")).stdout == "2\n"
        with Client(redis=fleet.connection(), pool="explicit") as c:
            assert c.pool == "explicit"


def test_a_given_connection_must_decode_replies():
    import fakeredis

    with pytest.raises(ValueError, match="decode_responses=True"):
        Client(redis=fakeredis.FakeRedis())


def test_sync_map_and_run_wait_without_an_mget_per_job(quiet_recheck, monkeypatch):
    with StandInFleet() as fleet, fleet.client() as c:
        mgets = count_mgets(monkeypatch, c)
        results = c.map([f"print({i})" for i in range(20)], timeout=5)
        assert [res.stdout for res in results] == [f"{i}\n" for i in range(20)]
        assert c.run("print(1)").status is Status.OK
        assert mgets == [0]


async def test_async_map_and_run_wait_without_an_mget_per_job(quiet_recheck, monkeypatch):
    with StandInFleet() as fleet:
        async with fleet.async_client() as c:
            await c.limits()
            mgets = count_mgets(monkeypatch, c)
            results = await c.map([f"print({i})" for i in range(20)], timeout=5)
            assert [res.status for res in results] == [Status.OK] * 20
            assert (await c.run("print(1)")).stdout == "1\n"
            assert mgets == [0]


def test_waiting_for_a_job_enqueued_elsewhere_reads_its_stored_result_first(quiet_recheck, monkeypatch):
    with StandInFleet(slots=1) as fleet, fleet.client() as submitter:
        job_id = submitter.submit("print(1)")
        submitter.wait(job_id)
        with fleet.client() as other:
            mgets = count_mgets(monkeypatch, other)
            assert other.wait(job_id, timeout=0.5).status is Status.OK  # well within recheck_s
            assert mgets == [1]


async def test_async_waiting_for_a_job_enqueued_elsewhere_reads_its_stored_result_first(quiet_recheck):
    with StandInFleet(slots=1) as fleet, fleet.client() as submitter:
        job_id = submitter.submit("print(1)")
        submitter.wait(job_id)
        async with fleet.async_client() as other:
            assert (await other.wait(job_id, timeout=0.5)).status is Status.OK


def test_the_documented_import_is_the_dispatchers_client():
    assert (warmfleet.Client, warmfleet.AsyncClient, warmfleet.Result, warmfleet.Session) == (
        dispatcher.Client, dispatcher.AsyncClient, dispatcher.Result, dispatcher.Session
    )
