"""A streamed answer whose generator is closed as soon as the answer ends, however it
ends. Starlette stops iterating a StreamingResponse when the client goes away, but leaves
the generator suspended at its `yield` until the garbage collector finalizes it: its
`finally` (which stops the cell or job the stream was following) could run much later.
Here it runs at once: a client that leaves stops its work."""

from __future__ import annotations

import anyio
from fastapi.responses import StreamingResponse


class ClosingStreamingResponse(StreamingResponse):
    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):  # the client may be gone: close all the same
                    await aclose()
