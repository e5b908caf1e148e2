"""One real fleet for the whole hostile suite: one pod, ONE slot (so "the next job"
always runs on the slot the hostile one just used), in runsc, on a redis-server that
requires a password (so a test can prove the password never reaches a job)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time

import pytest
import redis

from dispatcher import Client
from warmfleet.contract.schema import Result, Status


class PasswordRedis:
    """redis-server on a private Unix socket with `requirepass`, configured through a
    0600 file so the password is not on any command line either."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="warmfleet-hostile-redis-")
        self.password = "pw" + secrets.token_hex(20)
        self.socket = os.path.join(self.dir, "redis.sock")
        self.url = f"unix://:{self.password}@{self.socket}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        conf = os.path.join(self.dir, "redis.conf")
        with open(os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(
                f"port 0\nunixsocket {self.socket}\nunixsocketperm 700\nrequirepass {self.password}\n"
                f'save ""\nappendonly no\ndir {self.dir}\nloglevel warning\n'
            )
        self.proc = subprocess.Popen(["redis-server", conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "redis-server exited"
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                return
            except (redis.exceptions.ConnectionError, FileNotFoundError):
                time.sleep(0.02)  # readiness poll with a deadline
        raise TimeoutError("redis-server did not answer PING")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def secret_redis():
    server = PasswordRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hostile_fleet(secret_redis):
    from warmfleet.local.fleet import LocalFleet
    from warmfleet.settings import FleetSettings

    f = LocalFleet(FleetSettings(pods=1, slots=1, redis_url=secret_redis.url, drain_timeout_s=10))
    f.start(ready_timeout=60)
    yield f
    f.stop()


@pytest.fixture(scope="session")
def hclient(hostile_fleet):
    with Client(hostile_fleet.client_url) as c:
        yield c


# The next job on the slot: its workspace is empty, nothing of the job uid but itself
# is alive, and it can still write a file and start a process.
NEXT_JOB_PROBE = """\
import os, subprocess
me, uid = os.getpid(), os.getuid()
def alive(pid):
    try:
        if os.stat(f'/proc/{pid}').st_uid != uid:
            return False
        return open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[0] not in 'ZX'
    except OSError:
        return False
others = [p for p in os.listdir('/proc') if p.isdigit() and int(p) != me and alive(p)]
print(sorted(os.listdir('.')), others)
open('probe', 'w').write('x' * 4096)
subprocess.run(['true'], check=True)
print('fine')
"""


def assert_next_job_served(client: Client, after: Result) -> Result:
    """The slot that ran `after` runs an ordinary job correctly, from a clean state."""
    nxt = client.run(NEXT_JOB_PROBE, timeout=20)
    assert nxt.status is Status.OK, nxt
    assert nxt.stdout == "[] []\nfine\n", nxt
    assert nxt.executor == after.executor, (nxt.executor, after.executor)
    return nxt


@pytest.fixture
def run_hostile(hclient):
    """Run a hostile snippet, then prove the same slot still serves the next job."""

    def run(code: str, **kwargs) -> Result:
        r = hclient.run(code, **kwargs)
        assert_next_job_served(hclient, r)
        return r

    return run
