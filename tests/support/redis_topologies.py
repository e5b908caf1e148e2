"""Real Redis topologies on loopback for tests: a 3-primary Redis Cluster, and a primary
with a replica under three Sentinels. Every process is started and stopped by PID here."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import redis


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_ports(n: int) -> list[int]:
    """Ports below the ephemeral range whose cluster-bus twin (port + 10000) is free too."""
    found: list[int] = []
    while len(found) < n:
        port = random.randrange(12000, 22000)
        if port not in found and _free(port) and _free(port + 10000):
            found.append(port)
    return found


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (redis.exceptions.RedisError, OSError) as exc:
            last = exc
        time.sleep(interval)  # a poll with a deadline
    raise TimeoutError(f"{what} not within {timeout} s (last error: {last})")


class _Processes:
    def __init__(self, prefix: str) -> None:
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.procs: dict[int, subprocess.Popen] = {}  # port -> process

    def spawn(self, port: int, args: list[str], binary: str = "redis-server") -> subprocess.Popen:
        log = open(os.path.join(self.dir, f"{port}.log"), "ab")
        proc = subprocess.Popen([shutil.which(binary) or binary, *args], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, cwd=self.dir, start_new_session=True)
        log.close()
        self.procs[port] = proc
        wait_for(lambda: redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping(), 20, f"redis on :{port}")
        return proc

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()

    def pause(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _server_args(port: int, *extra: str) -> list[str]:
    return ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--loglevel", "warning", *extra]


class ClusterOf3(_Processes):
    """Three primaries, no replicas, all 16384 slots covered."""

    def __init__(self) -> None:
        super().__init__("warmfleet-test-cluster-")
        self.ports = free_ports(3)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> "ClusterOf3":
        try:
            return self._start()
        except BaseException:
            self.stop()  # a failed start leaves no server behind
            raise

    def _start(self) -> "ClusterOf3":
        for port in self.ports:
            self.spawn(port, _server_args(port, "--cluster-enabled", "yes",
                                          "--cluster-config-file", f"nodes-{port}.conf"))
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        for port in self.ports:
            wait_for(lambda: redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
                     .cluster("info").get("cluster_state") == "ok", 30, f"cluster state ok on :{port}")
        return self


class SentinelSet(_Processes):
    """A primary, a replica, and three Sentinels watching them (quorum 2, down after 1 s)."""

    SERVICE = "wfprimary"

    def __init__(self, down_after_ms: int = 1000) -> None:
        super().__init__("warmfleet-test-sentinel-")
        self.primary_port, self.replica_port, *self.sentinel_ports = free_ports(5)
        self.down_after_ms = down_after_ms

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{self.SERVICE}"

    def start(self) -> "SentinelSet":
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> "SentinelSet":
        self.spawn(self.primary_port, _server_args(self.primary_port))
        self.spawn(self.replica_port, _server_args(self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port)))
        wait_for(lambda: redis.Redis(host="127.0.0.1", port=self.replica_port, decode_responses=True).info("replication")
                 .get("master_link_status") == "up", 20, "replica in sync")
        for port in self.sentinel_ports:
            conf = os.path.join(self.dir, f"sentinel-{port}.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind 127.0.0.1\ndaemonize no\nlogfile \"\"\ndir {self.dir}\n"
                        f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                        f"sentinel down-after-milliseconds {self.SERVICE} {self.down_after_ms}\n"
                        f"sentinel failover-timeout {self.SERVICE} 10000\n"
                        f"sentinel parallel-syncs {self.SERVICE} 1\n")
            self.spawn(port, [conf], binary="redis-sentinel")
        for port in self.sentinel_ports:  # each knows the replica and the two other Sentinels
            s = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
            wait_for(lambda: s.sentinel_master(self.SERVICE)["num-other-sentinels"] == 2
                     and s.sentinel_slaves(self.SERVICE), 30, f"sentinel :{port} sees the set")
        return self

    def primary(self) -> tuple[str, int]:
        host, port = redis.Redis(host="127.0.0.1", port=self.sentinel_ports[0], decode_responses=True).sentinel_get_master_addr_by_name(self.SERVICE)
        return host, int(port)
