"""Client and AsyncClient against a real redis-server and a stand-in executor (a thread
that answers each job the way executor/store.py does: SET the result, PUBLISH it).
No sandbox: this checks the clients' decisions and round trips, not the fleet."""

from __future__ import annotations

import threading

import pytest
import redis

from dispatcher import AsyncClient, Client
from warmfleet.contract import keys
from warmfleet.contract.schema import FleetLimits, Job, Result, Status

POOL = "default"


class StandInExecutor:
    """Answers every job on a pool's stream with an ok Result echoing its budgets."""

    def __init__(self, url: str, pool: str = POOL) -> None:
        self.r = redis.Redis.from_url(url, decode_responses=True)
        self.pool = pool
        self.jobs: list[Job] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "StandInExecutor":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.r.close()

    def _serve(self) -> None:
        last = "0-0"
        while not self._stop.is_set():
            for _, entries in self.r.xread({keys.stream(self.pool): last}, block=100) or []:
                for last, fields in entries:
                    job = Job.from_json(fields["job"])
                    self.jobs.append(job)
                    result = Result(job_id=job.job_id, status=Status.OK, stdout=f"{job.timeout}\n").to_json()
                    self.r.set(keys.result(self.pool, job.job_id), result, ex=60)
                    if job.reply_to:
                        self.r.publish(job.reply_to, result)


def _calls(r: redis.Redis, command: str) -> int:
    return int(r.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.fixture
def r(redis_url):
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    yield conn
    conn.close()


def _first_job(r: redis.Redis, pool: str = POOL) -> Job:
    (_, fields), = r.xrange(keys.stream(pool), count=1)
    return Job.from_json(fields["job"])


def test_budgets_left_out_are_the_fleets_published_defaults(r, redis_url):
    r.set(keys.limits(POOL), FleetLimits(timeout=7.0, cpu_time=3.0, memory_mb=64).model_dump_json())
    with Client(redis_url) as c:
        c.submit("print(1)")
    job = _first_job(r)
    assert (job.language, job.timeout, job.cpu_time, job.memory_mb) == ("python", 7.0, 3.0, 64)


async def test_async_budgets_left_out_are_the_fleets_published_defaults(r, redis_url):
    r.set(keys.limits(POOL), FleetLimits(timeout=8.0, cpu_time=2.0, memory_mb=96).model_dump_json())
    async with AsyncClient(redis_url) as c:
        await c.submit("print(1)", memory_mb=128)
    job = _first_job(r)
    assert (job.timeout, job.cpu_time, job.memory_mb) == (8.0, 2.0, 128)


def test_without_published_limits_the_defaults_are_fleetlimits(r, redis_url):
    with Client(redis_url) as c:
        c.submit("print(1)")
    job, defaults = _first_job(r), FleetLimits()
    assert (job.timeout, job.cpu_time, job.memory_mb) == (defaults.timeout, defaults.cpu_time, defaults.memory_mb)


async def test_the_pool_comes_from_warmfleet_pool(r, redis_url, monkeypatch):
    monkeypatch.setenv("WARMFLEET_POOL", "other")
    with Client(redis_url) as c:
        assert c.pool == "other"
        c.submit("print(1)")
    async with AsyncClient(redis_url) as ac:
        assert ac.pool == "other"
    assert _first_job(r, "other").code == "print(1)"
    with Client(redis_url, pool="explicit") as c:
        assert c.pool == "explicit"


def test_sync_map_waits_without_an_mget_per_job(r, redis_url):
    with StandInExecutor(redis_url), Client(redis_url) as c:
        c.limits()
        r.config_resetstat()
        results = c.map([f"print({i})" for i in range(20)], timeout=5)
        assert [res.status for res in results] == [Status.OK] * 20
        assert _calls(r, "mget") == 0
        # run() and the async map already did without it
        r.config_resetstat()
        assert c.run("print(1)", timeout=4).stdout == "4.0\n"
        assert _calls(r, "mget") == 0


async def test_async_map_and_run_wait_without_an_mget_per_job(r, redis_url):
    with StandInExecutor(redis_url):
        async with AsyncClient(redis_url) as c:
            await c.limits()
            r.config_resetstat()
            results = await c.map([f"print({i})" for i in range(20)], timeout=5)
            assert [res.status for res in results] == [Status.OK] * 20
            assert (await c.run("print(1)", timeout=3)).stdout == "3.0\n"
            assert _calls(r, "mget") == 0


def test_waiting_for_a_job_enqueued_elsewhere_reads_its_stored_result_first(r, redis_url):
    with StandInExecutor(redis_url), Client(redis_url) as submitter:
        job_id = submitter.submit("print(1)")
        submitter.wait(job_id)
        with Client(redis_url) as other:
            r.config_resetstat()
            assert other.wait(job_id, timeout=0.5).status is Status.OK  # well within recheck_s
            assert _calls(r, "mget") == 1


async def test_async_waiting_for_a_job_enqueued_elsewhere_reads_its_stored_result_first(r, redis_url):
    with StandInExecutor(redis_url), Client(redis_url) as submitter:
        job_id = submitter.submit("print(1)")
        submitter.wait(job_id)
        async with AsyncClient(redis_url) as other:
            assert (await other.wait(job_id, timeout=0.5)).status is Status.OK


def test_the_documented_import_is_the_dispatchers_client():
    import dispatcher
    import warmfleet

    assert (warmfleet.Client, warmfleet.AsyncClient, warmfleet.Result) == (
        dispatcher.Client, dispatcher.AsyncClient, dispatcher.Result
    )
