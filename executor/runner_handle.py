"""The supervisor's handle on one slot runner process: spawn, talk, stop, kill."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct

from executor import protocol

# The runner's interpreter is started lean: no site, no environment, no user paths.
_BOOT = "import sys; sys.path.insert(0, sys.argv.pop(1)); from executor import runner; sys.exit(runner.main())"
_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RunnerGone(Exception):
    """The runner process closed its channel (it exited or was killed)."""


class RunnerHandle:
    def __init__(self, python: str, cfg: dict) -> None:
        self.python = python
        self.cfg = cfg
        self.pid: int | None = None
        self.exit_status: int | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        os.set_inheritable(child.fileno(), True)
        argv = [self.python, "-S", "-I", "-c", _BOOT, _SOURCE_ROOT, str(child.fileno()), json.dumps(self.cfg)]
        try:
            # An empty environment: the runner and its jobs never see the supervisor's secrets.
            self.pid = os.posix_spawn(self.python, argv, {"PATH": "/usr/local/bin:/usr/bin:/bin"})
        finally:
            child.close()
        self.exit_status = None
        self._reader, self._writer = await asyncio.open_unix_connection(sock=parent)
        hello = await self.recv()
        if hello.get("t") != "hello":
            raise RunnerGone(f"unexpected greeting {hello!r}")

    async def recv(self) -> dict:
        assert self._reader is not None
        try:
            (size,) = protocol.HEADER.unpack(await self._reader.readexactly(protocol.HEADER.size))
            return json.loads(await self._reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError, struct.error) as exc:
            raise RunnerGone(str(exc) or "channel closed") from exc

    async def send(self, msg: dict) -> None:
        assert self._writer is not None
        try:
            self._writer.write(protocol.encode(msg))
            await self._writer.drain()
        except ConnectionError as exc:
            raise RunnerGone(str(exc)) from exc

    def signal(self, sig: int) -> None:
        if self.pid is not None and self.exit_status is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
