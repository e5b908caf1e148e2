"""A job's or a session call's stdout and stderr, read from their pipes: capped per
stream (what goes over the cap is dropped and the stream marked truncated, which is the
output budget's signal), and for a streaming job also sent on to the supervisor as
chunks while it runs. One capture for the slot runner (executor/lean/runner.py) and the
supervisor's session handle (executor/sessions/handle.py)."""

from __future__ import annotations

import codecs
import os
import time
from collections.abc import Callable

from warmfleet.contract import messages
from warmfleet.contract.messages import Chunk, RunOutcome

class OutputCapture:
    """stdout/stderr of one run: capped per stream; with a channel (a streaming job), also
    sent to the supervisor as chunks, batched (every 16 KiB or 25 ms) to bound messages
    per job."""

    flush_every_s = 0.025
    flush_bytes = 16 << 10

    def __init__(self, cap: int, chan: int | None = None) -> None:
        self.cap = cap
        self.chan = chan
        self.buffers = {"stdout": bytearray(), "stderr": bytearray()}
        self.truncated = {"stdout": False, "stderr": False}
        self.decoders = {k: codecs.getincrementaldecoder("utf-8")("replace") for k in self.buffers}
        self.pending = {"stdout": bytearray(), "stderr": bytearray()}
        self.last_flush = time.monotonic()
        if chan is None:
            self.flush_every_s = 3600.0

    def add(self, name: str, data: bytes) -> bool:
        """Keep what fits; False once the stream went over its cap."""
        buf = self.buffers[name]
        room = self.cap - len(buf)
        kept = data[:room]
        buf += kept
        if self.chan is not None and kept:
            self.pending[name] += kept
            if len(self.pending[name]) >= self.flush_bytes:
                self.flush()
        if len(data) > room:
            self.truncated[name] = True
            return False
        return True

    def drain(self, name: str, fd: int, take: Callable[[str, bytes], object] | None = None) -> None:
        """What is left in the stream's (non-blocking) pipe, up to the point where it goes
        over the cap: read after the writer ended or answered. `take` (default: add) is
        where each read goes: a streaming session call also hands it on."""
        take = take or self.add
        while not self.truncated[name]:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:  # BlockingIOError: nothing more for now
                return
            if not data:
                return
            take(name, data)

    def flush_if_due(self) -> None:
        if self.chan is not None and time.monotonic() - self.last_flush >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if self.chan is None:
            return
        for name, pending in self.pending.items():
            if pending:
                text = self.decoders[name].decode(bytes(pending))
                pending.clear()
                if text:
                    messages.send(self.chan, Chunk(stream=name, data=text))

    def text(self, name: str) -> str:
        return self.buffers[name].decode("utf-8", "replace")

    def into(self, outcome: RunOutcome) -> RunOutcome:
        """`outcome` with this output."""
        outcome.stdout, outcome.stderr = self.text("stdout"), self.text("stderr")
        outcome.stdout_truncated, outcome.stderr_truncated = self.truncated["stdout"], self.truncated["stderr"]
        return outcome
