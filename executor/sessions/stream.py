"""A streaming session call's output, published as it is written: the same records on
the same per-call output stream (keys.output) as a streaming job's, so a client reads
both alike (dispatcher/core.py OutputCursor). Batched like the job runner's chunks
(every FLUSH_BYTES or FLUSH_S) to bound Redis writes per call; UTF-8 split across reads
is kept whole."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging

from warmfleet.contract import keys, messages

log = logging.getLogger("warmfleet.sessions")

FLUSH_BYTES = 16 * 1024
FLUSH_S = 0.025
MAXLEN = 100_000


class CallOutput:
    def __init__(self, redis, pool: str, call_id: str, ttl_s: int) -> None:
        self.redis, self.key, self.ttl_s = redis, keys.output(pool, call_id), ttl_s
        self._decoders = {n: codecs.getincrementaldecoder("utf-8")("replace") for n in ("stdout", "stderr")}
        self._pending: list[tuple[str, str]] = []
        self._size = 0
        self._flusher: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._closed = False

    def start(self) -> None:
        self._flusher = asyncio.ensure_future(self._run())

    def write(self, stream: str, data: bytes) -> None:
        """Called by the session's pipe reader (sync): queue it; the flusher sends it."""
        text = self._decoders[stream].decode(data)
        if not text:
            return
        if self._pending and self._pending[-1][0] == stream:
            self._pending[-1] = (stream, self._pending[-1][1] + text)
        else:
            self._pending.append((stream, text))
        self._size += len(data)
        if self._size >= FLUSH_BYTES:
            self._wake.set()

    async def _run(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_S)
            self._wake.clear()
            await self._flush()

    async def _flush(self, then=None) -> None:
        """Send what is pending; `then(pipe)` (the result's store) adds itself after the
        end marker, in the same round trip."""
        records = [messages.chunk_record(messages.Chunk(stream=s, data=d)) for s, d in self._pending]
        self._pending, self._size = [], 0
        if then is not None:
            records.append(messages.END_RECORD)
        if not records:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for record in records:
                    pipe.xadd(self.key, record, maxlen=MAXLEN, approximate=True)
                pipe.expire(self.key, self.ttl_s)
                if then is not None:
                    await then(pipe)
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - a lost chunk must not fail the call; its Result has all
            if then is not None:
                raise  # the result's store failed with it: the caller's to handle, as for any store
            log.warning("could not publish a session call's output", extra={"error": str(exc)})

    async def finish(self, store) -> None:
        """Flush what is left, the end marker, then `store(pipe)` (the call's result): a
        reader sees every chunk before the end, and the result right after it."""
        self._closed = True
        self._wake.set()  # the flusher sends what it holds and stops (not cancelled mid-send)
        if self._flusher is not None:
            await self._flusher
        for name, decoder in self._decoders.items():
            tail = decoder.decode(b"", final=True)
            if tail:
                self._pending.append((name, tail))
        await self._flush(then=store)
