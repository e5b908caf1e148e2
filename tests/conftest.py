"""Shared fixtures: a real redis-server and a real local fleet in runsc sandboxes.

In CI (CI=true) a missing runsc or redis-server fails the run: .ci/run installs them,
so a skip there would hide a failure. On a laptop without them, the tests that need
them are skipped with the reason printed (-rs).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from warmfleet.local.redis_server import EmbeddedRedis

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
NEEDS_RUNSC = ("e2e", "hostile")


def _missing(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = _missing("redis-server", "runsc")
    if IN_CI and missing:
        raise pytest.UsageError(f"CI must not skip: {', '.join(missing)} missing (scripts/setup installs them)")
    if os.geteuid() != 0 and not IN_CI:
        print("note: runsc sandboxes need root; e2e tests will fail as a normal user")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = _missing("redis-server", "runsc")
    for item in items:
        parts = item.path.relative_to(config.rootpath).parts
        if any(p in NEEDS_RUNSC for p in parts):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.skipif(not IN_CI and bool(missing), reason=f"needs {', '.join(missing)}"))
        elif _missing("redis-server"):
            item.add_marker(pytest.mark.skipif(not IN_CI, reason="needs redis-server"))


@pytest.fixture(scope="session", autouse=True)
def _private_state_dir():
    """Keep tests from reading or overwriting a developer's running `warmfleet up`."""
    path = tempfile.mkdtemp(prefix="warmfleet-test-state-")
    old = os.environ.get("WARMFLEET_STATE_DIR")
    os.environ["WARMFLEET_STATE_DIR"] = path
    yield path
    if old is None:
        os.environ.pop("WARMFLEET_STATE_DIR", None)
    else:
        os.environ["WARMFLEET_STATE_DIR"] = old
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on a private Unix socket, for tests that need no fleet."""
    workdir = tempfile.mkdtemp(prefix="warmfleet-test-redis-")
    server = EmbeddedRedis(workdir, os.path.join(workdir, "redis.sock"))
    server.start()
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server):
    import redis

    r = redis.Redis.from_url(redis_server.url)
    r.flushall()
    r.close()
    return redis_server.url


@pytest.fixture(scope="session")
def fleet():
    """One pod with two slots in a real runsc sandbox, on its own embedded Redis."""
    from warmfleet.local.fleet import LocalFleet
    from warmfleet.settings import FleetSettings

    f = LocalFleet(FleetSettings(pods=1, slots=2, drain_timeout_s=20))
    f.start(ready_timeout=60)
    yield f
    f.stop()


@pytest.fixture(scope="session")
def data_science_fleet():
    """One pod on the example data-science job environment (envs/data-science.txt) with its
    preload, shared by the e2e tests of job environments and of cells: a preloading pod takes
    seconds to start in gVisor. One slot, so consecutive jobs always run on children of the
    same warm runner; two sessions."""
    from warmfleet.local.fleet import LocalFleet
    from warmfleet.settings import FleetSettings

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    f = LocalFleet(FleetSettings(pods=1, slots=1, sessions=2, drain_timeout_s=20,
                                 requirements=os.path.join(root, "envs", "data-science.txt"),
                                 preload=["numpy", "pandas", "matplotlib.pyplot"]))
    f.start(ready_timeout=120)
    yield f
    f.stop()


@pytest.fixture
def client(fleet):
    from dispatcher import Client

    with Client(fleet.client_url) as c:
        yield c
