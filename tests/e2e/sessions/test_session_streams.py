"""Session calls streamed, stopped, in contexts and in bash (what the E2B front door
needs of a session), through a real runsc pod."""

from __future__ import annotations

import asyncio
import time

import pytest

from dispatcher import AsyncClient
from dispatcher.request import Chunk


@pytest.mark.timeout(90)
async def test_a_streamed_call_sends_output_as_it_is_printed(sfleet):
    async with AsyncClient(sfleet.client_url) as c:
        async with c.session() as s:
            seen: list[tuple[float, Chunk]] = []
            result = None
            started = time.monotonic()
            code = "import sys, time\nprint('a', flush=True)\ntime.sleep(1.5)\nprint('b', file=sys.stderr)"
            async for item in s.stream(code):
                if isinstance(item, Chunk):
                    seen.append((time.monotonic() - started, item))
                else:
                    result = item
            assert result is not None and result.ok, result
            assert [(c.stream, c.data) for _, c in seen] == [("stdout", "a\n"), ("stderr", "b\n")]
            assert seen[0][0] < seen[1][0] - 1.0  # 'a' arrived before the sleep ended
            assert (result.stdout, result.stderr) == ("a\n", "b\n")


@pytest.mark.timeout(90)
async def test_leaving_a_stream_stops_the_call_and_the_session_goes_on(sfleet):
    async with AsyncClient(sfleet.client_url) as c:
        async with c.session() as s:
            await s.run("x = 1")
            code = "import time\nprint('started', flush=True)\nfor i in range(600):\n    time.sleep(0.05)\nx = 2"
            async for item in s.stream(code, timeout=60):
                assert isinstance(item, Chunk) and item.data == "started\n"
                break  # the client goes away mid-call
            started = time.monotonic()
            after = await s.run("print(x)")
            assert after.stdout == "1\n", after  # the cell was interrupted before it set x
            assert time.monotonic() - started < 10  # not after the 30 s the cell would take


@pytest.mark.timeout(90)
async def test_contexts_have_their_own_globals_and_share_files(sfleet):
    async with AsyncClient(sfleet.client_url) as c:
        async with c.session() as s:
            assert (await s.run("x = 'main'; open('shared.txt', 'w').write('from main')")).ok
            r = await s.run("print('x' in globals(), open('shared.txt').read()); x = 'ctx'", context="ctx1")
            assert r.stdout == "False from main\n", r
            assert (await s.run("print(x)")).stdout == "main\n"
            assert (await s.run("print(x)", context="ctx1")).stdout == "ctx\n"
            with pytest.raises(ValueError):
                await s.run("1", context="../bad")


@pytest.mark.timeout(90)
async def test_bash_calls_run_in_the_workspace(sfleet):
    async with AsyncClient(sfleet.client_url) as c:
        async with c.session() as s:
            await s.run("open('f.txt', 'w').write('hello')")
            r = await s.run("cat f.txt; echo; echo err >&2", language="bash")
            assert (r.status.value, r.stdout, r.stderr) == ("ok", "hello\n", "err\n")
            failed = await s.run("exit 3", language="bash")
            assert (failed.status.value, failed.exit_code) == ("error", 3)
            chunks = [i async for i in s.stream("echo one; sleep 0.3; echo two", language="bash")]
            assert [i.data for i in chunks if isinstance(i, Chunk)] == ["one\n", "two\n"]


AGE = ("import os\nticks = int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19])\n"
       "print(float(open('/proc/uptime').read().split()[0]) - ticks / os.sysconf('SC_CLK_TCK'))")


def _spares(fleet) -> int:
    import json

    import redis

    from warmfleet.contract import keys

    r = redis.Redis.from_url(fleet.client_url, decode_responses=True)
    try:
        return sum(json.loads(r.get(keys.pod("default", p)) or "{}").get("sessions_spare", 0)
                   for p in r.zrange(keys.pods("default"), 0, -1))
    finally:
        r.close()


@pytest.mark.timeout(90)
async def test_an_open_takes_the_session_forked_ahead_and_another_is_forked(sfleet):
    """A lean pod forks a spare once it has opened a session; the next open takes it (its
    process was started before the open: it already answers), and a new spare follows."""
    deadline = time.monotonic() + 30
    async with AsyncClient(sfleet.client_url) as c:
        async with c.session() as first:
            await first.run("pass")
            while _spares(sfleet) != 1:  # the pod's snapshot says when its spare is ready
                assert time.monotonic() < deadline, "no spare session was forked"
                await asyncio.sleep(0.1)  # poll with a deadline
            await asyncio.sleep(1.0)  # not a synchronisation: a gap a spare's age shows and a fresh fork's does not
            t0 = time.monotonic()
            async with c.session() as second:
                age = float((await second.run(AGE)).stdout)  # seconds since its process started
                assert age > time.monotonic() - t0 + 0.5, "the open forked a new process instead of taking the spare"
                assert (await first.run("print(1)")).stdout == "1\n"  # each its own process and globals
                await second.run("x = 2")
                assert (await first.run("print('x' in globals())")).stdout == "False\n"
                while _spares(sfleet) != 1:
                    assert time.monotonic() < deadline, "no new spare after the first was taken"
                    await asyncio.sleep(0.1)
