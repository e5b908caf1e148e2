"""The supervisor's handle on one slot runner process: spawn, talk, stop, kill."""

from __future__ import annotations

import asyncio
import os
import signal
import struct

from executor.boot import SpawnedRunner, spawn_runner
from warmfleet.contract import messages
from warmfleet.contract.messages import Hello, Message, RunnerConfig


class RunnerGone(Exception):
    """The runner process closed its channel (it exited or was killed), or broke the protocol."""


class RunnerHandle:
    def __init__(self, python: str, cfg: RunnerConfig, spawned: SpawnedRunner | None = None) -> None:
        self.python = python
        self.cfg = cfg
        self._spawned = spawned  # started by executor.boot before the supervisor's imports
        self.pid: int | None = None
        self.exit_status: int | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        spawned, self._spawned = self._spawned, None
        if spawned is None:
            spawned = spawn_runner(self.python, self.cfg)
        self.pid = spawned.pid
        self.exit_status = None
        self._reader, self._writer = await asyncio.open_unix_connection(sock=spawned.sock)
        hello = await self.recv()
        if not isinstance(hello, Hello):
            raise RunnerGone(f"unexpected greeting {hello!r}")

    async def recv(self) -> Message:
        """The next message; the same bounded frame decoding as the runner's end."""
        assert self._reader is not None
        try:
            size = messages.frame_size(await self._reader.readexactly(messages.HEADER.size))
            return messages.from_frame(messages.decode_body(await self._reader.readexactly(size)))
        except (asyncio.IncompleteReadError, ConnectionError, struct.error, messages.FrameError) as exc:
            raise RunnerGone(str(exc) or "channel closed") from exc

    async def send(self, msg: Message) -> None:
        assert self._writer is not None
        try:
            self._writer.write(messages.encode(msg))
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
