"""One pool served by `warmfleet up --redis-url` on three "hosts" (network namespaces, each
with its own hostname) against one Redis in a fourth namespace. Jobs spread over the hosts;
a host killed mid-load (its sandboxes and its `warmfleet up`, SIGKILL) loses nothing: its
in-flight jobs are reclaimed and answered by the others."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest
import redis

from dispatcher import Client
from support.netns import HostsLab
from support.redis_topologies import wait_for
from warmfleet.contract import keys
from warmfleet.cli import status as fleet_status
from warmfleet.contract.schema import Status

HOSTS = 3
JOBS = 150
PORT = 6379  # inside the Redis namespace only
WARMFLEET = os.path.join(os.path.dirname(sys.executable), "warmfleet")


def runsc_ids(root: str) -> list[str]:
    out = subprocess.run(["runsc", "--root", root, "list", "-q"], capture_output=True, text=True, timeout=30)
    return out.stdout.split()


class Hosts:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="warmfleet-test-hosts-")
        os.chmod(self.dir, 0o711)
        self.lab = HostsLab(HOSTS)
        self.socket = os.path.join(self.dir, "redis.sock")
        self.redis: subprocess.Popen | None = None
        self.ups: dict[int, subprocess.Popen] = {}

    def start(self) -> "Hosts":
        self.lab.start()
        binds = [self.lab.redis_addr(n) for n in range(1, HOSTS + 1)]
        self.redis = subprocess.Popen(self.lab.command(self.lab.redis_ns, [
            "redis-server", "--port", str(PORT), "--bind", *binds, "--protected-mode", "no",
            "--unixsocket", self.socket, "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
            "--dir", self.dir, "--loglevel", "warning"]), stdin=subprocess.DEVNULL, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: redis.Redis(unix_socket_path=self.socket).ping(), 20, "redis in its namespace")
        for n in range(1, HOSTS + 1):
            tmp = os.path.join(self.dir, f"host{n}")
            os.makedirs(tmp, mode=0o711)
            env = {**os.environ, "TMPDIR": tmp, "WARMFLEET_RECLAIM_IDLE_S": "5",
                   "WARMFLEET_STATE_DIR": os.path.join(tmp, "state")}
            with open(os.path.join(self.dir, f"host{n}.log"), "ab") as log:
                self.ups[n] = subprocess.Popen(self.lab.command(self.lab.host_ns[n - 1], [
                    WARMFLEET, "up", "--redis-url", f"redis://{self.lab.redis_addr(n)}:{PORT}",
                    "--pods", "1", "--slots", "2"], hostname=f"wfhost{n}"),
                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        return self

    def runsc_root(self, n: int) -> str:
        (root,) = glob.glob(os.path.join(self.dir, f"host{n}", "warmfleet-*", "runsc"))
        return root

    def kill_host(self, n: int) -> None:
        """Everything of host n dies at once: its sandboxes, then its `warmfleet up`."""
        root = self.runsc_root(n)
        for sandbox_id in runsc_ids(root):
            subprocess.run(["runsc", "--root", root, "kill", sandbox_id, "KILL"], capture_output=True, timeout=30)
        self.ups[n].send_signal(signal.SIGKILL)
        self.ups[n].wait()

    def log(self, n: int) -> str:
        with open(os.path.join(self.dir, f"host{n}.log"), errors="replace") as f:
            return f.read()[-3000:]

    def stop(self) -> None:
        for n, up in self.ups.items():
            if up.poll() is None:
                up.send_signal(signal.SIGTERM)
        for n, up in self.ups.items():
            try:
                up.wait(timeout=90)
            except subprocess.TimeoutExpired:
                up.send_signal(signal.SIGKILL)
                up.wait()
        for root in glob.glob(os.path.join(self.dir, "host*", "warmfleet-*", "runsc")):
            for sandbox_id in runsc_ids(root):  # what a killed host left behind
                subprocess.run(["runsc", "--root", root, "delete", "-force", sandbox_id], capture_output=True, timeout=60)
        if self.redis is not None and self.redis.poll() is None:
            self.redis.send_signal(signal.SIGKILL)
            self.redis.wait()
        self.lab.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def hosts():
    h = Hosts()
    try:
        yield h.start()
    finally:
        h.stop()


@pytest.mark.timeout(480)
def test_three_hosts_share_a_pool_and_one_dying_mid_load_loses_nothing(hosts):
    url = f"unix://{hosts.socket}"
    r = redis.Redis(unix_socket_path=hosts.socket, decode_responses=True)
    def ready() -> bool:
        for n, up in hosts.ups.items():
            assert up.poll() is None, f"host {n}'s warmfleet up exited:\n{hosts.log(n)}"
        return fleet_status.read_status(r, "default").ready >= HOSTS * 2

    wait_for(ready, 240, "every host's slots ready", interval=0.5)
    with Client(url) as client:
        ids = [client.submit(f"import time; time.sleep(0.5); print({i})") for i in range(JOBS)]
        stream = keys.stream("default")

        def host2_busy() -> bool:  # a quarter answered, and host 2 in the middle of a job
            if sum(1 for v in r.mget([keys.result("default", j) for j in ids]) if v) < JOBS // 4:
                return False
            pending = r.xpending_range(stream, keys.CONSUMER_GROUP, "-", "+", 1000)
            return any(p["consumer"].startswith("wfhost2") for p in pending)

        wait_for(host2_busy, 240, "host 2 busy after a quarter answered", interval=0.02)
        hosts.kill_host(2)
        # What host 2 held when it died: entries pending on its consumers (a stored result
        # is acknowledged in the same script, so these have none).
        held = [p["message_id"] for p in r.xpending_range(stream, keys.CONSUMER_GROUP, "-", "+", 1000)
                if p["consumer"].startswith("wfhost2")]
        held_jobs = {json.loads(e[1]["job"])["job_id"] for eid in held for e in r.xrange(stream, eid, eid)}
        results = [client.wait(j, timeout=240) for j in ids]
    assert [x.status for x in results] == [Status.OK] * JOBS
    assert [x.stdout for x in results] == [f"{i}\n" for i in range(JOBS)]
    by_host = {n: sum(1 for x in results if x.executor.startswith(f"wfhost{n}")) for n in range(1, HOSTS + 1)}
    print(f"\nanswered by host: {by_host}; host 2 held {len(held_jobs)} job(s) when it died")
    assert all(by_host[n] > 0 for n in by_host), by_host  # spread over every host
    assert held_jobs, "host 2 was killed with nothing in flight: the test proves nothing"
    for x in results:
        if x.job_id in held_jobs:
            assert not x.executor.startswith("wfhost2")  # re-run by a live host
    summary = r.xpending(stream, keys.CONSUMER_GROUP)
    assert summary["pending"] == 0
    r.close()
