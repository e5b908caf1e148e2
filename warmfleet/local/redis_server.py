"""An embedded redis-server owned by `warmfleet up`: Unix socket only (no TCP), no
persistence, started and stopped with the fleet."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import redis

from warmfleet.local import child_process


class RedisServerMissing(RuntimeError):
    pass


class EmbeddedRedis:
    def __init__(self, workdir: str, socket_path: str, *, persistent: bool = False) -> None:
        self.workdir = workdir
        self.socket_path = socket_path
        # Persistent (AOF, fsync always) survives a restart with its streams and groups,
        # as the operator's production Redis would; the embedded default keeps nothing.
        self.persistent = persistent
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerMissing(
                "redis-server is not installed: `apt-get install redis-server` (or pass --redis-url URL)"
            )
        os.makedirs(self.workdir, mode=0o700, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port", "0",  # no TCP at all: nothing on the network to reach
                "--unixsocket", self.socket_path,
                "--unixsocketperm", "700",  # job uids get EACCES (docs/design/field-notes.md)
                "--dir", self.workdir,
                "--save", "",
                "--appendonly", "yes" if self.persistent else "no",
                "--appendfsync", "always",
                "--daemonize", "no",
                "--loglevel", "warning",
                "--logfile", os.path.join(self.workdir, "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C goes to us; we stop redis last
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; see {self.workdir}/redis.log")
            if os.path.exists(self.socket_path):
                try:
                    redis.Redis(unix_socket_path=self.socket_path, socket_timeout=1).ping()
                    return
                except redis.exceptions.ConnectionError:
                    pass
            time.sleep(0.01)  # readiness poll with a deadline
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        child_process.terminate(self.proc, timeout)
