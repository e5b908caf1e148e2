"""Answer asyncio's "which loop is running?" without a getpid() syscall.

CPython 3.11's C get_running_loop() compares the loop's pid with getpid() on every call,
to notice a fork. Inside gVisor (ptrace) every syscall is a trap into the Sentry: profiled
under load, the supervisor made ~16 of these calls per job (asyncio timeouts, tasks,
sleep, redis-py's health check and reads), ~1.1 s of 17 s in a 500-job run: its largest
cost after waiting. The supervisor runs one loop in its main thread and never forks (it
posix_spawns its runners), so the check can only ever say yes there. Python 3.12 dropped
it for the same reason (the running loop is reset in a forked child instead).

Only the main thread, only while that loop runs: anything else asks the original.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import threading


def install(loop: asyncio.AbstractEventLoop) -> None:
    original_get = asyncio.events.get_running_loop
    original_peek = asyncio.events._get_running_loop
    main = threading.get_ident()

    def get_running_loop() -> asyncio.AbstractEventLoop:
        if threading.get_ident() == main and loop.is_running():
            return loop
        return original_get()

    def _get_running_loop() -> asyncio.AbstractEventLoop | None:
        if threading.get_ident() == main and loop.is_running():
            return loop
        return original_peek()

    # The name is looked up on these modules at each call (asyncio.tasks, timeouts,
    # mixins use events.*; redis-py and async_timeout use asyncio.*).
    asyncio.events.get_running_loop = asyncio.get_running_loop = get_running_loop
    asyncio.events._get_running_loop = asyncio._get_running_loop = _get_running_loop
