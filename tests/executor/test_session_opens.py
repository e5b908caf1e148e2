"""Session opens decided in Redis, in-process against a real redis-server: two pods' opens
(stand-in hosts, no session process) on one entry. An open is answered once and opens
one session, whichever pod holds the entry when, and a dead pod's half-done open is
opened by another once its record's lease lapses."""

from __future__ import annotations

import asyncio
import json


from executor import store
from executor.delivery import Entry
from executor.pod_state import PodState
from executor.sessions.handle import SessionDied
from executor.sessions.opens import SessionOpens
from executor.sessions.state import Session
from warmfleet.settings import ExecutorSettings
from warmfleet.contract import keys

POOL = "default"
SID = "a" * 32


class StandInHost:
    """What SessionOpens needs of a SessionHost; `start` blocks until `proceed` is set."""

    def __init__(self, redis, pod_id: str, lease_s: float = 10.0) -> None:
        self.settings = ExecutorSettings(redis_url="unix:///unused", pod_id=pod_id, sessions=1, drop_privileges=False,
                                         metrics_port=0, block_ms=50, session_lease_s=lease_s)
        self.redis, self.pool, self.pod_id = redis, POOL, pod_id
        self.sup = PodState(self.settings, redis, store.ResultStore(redis, POOL, 60))
        self.consumer = f"{pod_id}/sessions"
        self.running = True
        self.has_room = asyncio.Event()
        self.has_room.set()
        self.lease_ms = int(lease_s * 1000)
        self.free = [0]
        self.proceed = asyncio.Event()
        self.proceed.set()
        self.fail_start = False
        self.started: list[str] = []
        self.admitted: list[str] = []
        self.discarded: list[str] = []

    def take_index(self) -> int:
        return self.free.pop(0)

    def give_back(self, index: int) -> None:
        self.free.insert(0, index)

    def new_session(self, sid, index, idle, life, reply_to) -> Session:
        return Session(sid, index, None, idle, life, reply_to)  # type: ignore[arg-type] - no process here

    async def start(self, session: Session) -> None:
        self.started.append(session.id)
        await self.proceed.wait()
        if self.fail_start:
            self.free.append(session.index)
            raise SessionDied("no interpreter")

    async def discard(self, session: Session) -> None:
        self.discarded.append(session.id)
        self.free.append(session.index)

    async def admit(self, session: Session) -> None:
        self.admitted.append(session.id)


async def _request(r) -> str:
    body = {"session_id": SID, "idle_timeout": 60, "max_lifetime": 600, "reply_to": keys.reply_channel(POOL, "c1")}
    return await r.xadd(keys.session_opens(POOL), {"open": json.dumps(body)})


async def _read(r, host: StandInHost) -> Entry:
    """A client asks; the host's pod reads the open through the group (it then holds the entry)."""
    await _request(r)
    resp = await r.xreadgroup(keys.CONSUMER_GROUP, host.consumer, {keys.session_opens(POOL): ">"}, count=1)
    ((entry_id, fields),) = resp[0][1]
    return Entry(entry_id, fields, False)


async def _hand_to(r, host: StandInHost, entry_id: str) -> Entry:
    """As XAUTOCLAIM would: the entry is now the other pod's."""
    ((eid, fields),) = await r.xclaim(keys.session_opens(POOL), keys.CONSUMER_GROUP, host.consumer, 0, [entry_id])
    return Entry(eid, fields, True)


async def _record(r) -> dict | None:
    raw = await r.get(keys.session(POOL, SID))
    return json.loads(raw) if raw else None


async def _pending(r) -> int:
    return (await r.xpending(keys.session_opens(POOL), keys.CONSUMER_GROUP))["pending"]


async def _answer(r) -> dict | None:
    raw = await r.get(keys.result(POOL, SID))
    return json.loads(raw) if raw else None


async def test_an_open_is_answered_once_and_a_second_delivery_only_acked(r):
    a, b = StandInHost(r, "pod-a"), StandInHost(r, "pod-b")
    entry = await _read(r, a)
    await SessionOpens(a).open(entry)
    assert (a.admitted, (await _record(r))["state"], (await _record(r))["pod"]) == ([SID], "open", "pod-a")
    assert (await _answer(r))["status"] == "ok" and await _pending(r) == 0
    await SessionOpens(b).open(entry)  # delivered again (a reclaim that raced the ack)
    assert (b.started, b.admitted, b.free) == ([], [], [0])


async def test_an_open_held_by_a_live_pod_is_left_to_it(r):
    a, b = StandInHost(r, "pod-a"), StandInHost(r, "pod-b")
    entry = await _read(r, a)
    a.proceed.clear()  # pod a is still starting the session's process
    opening = asyncio.create_task(SessionOpens(a).open(entry))
    while not a.started:
        await asyncio.sleep(0.01)  # poll: a has claimed the record and is starting
    assert (await _record(r))["state"] == "opening"
    await SessionOpens(b).open(await _hand_to(r, b, entry.entry_id))  # reclaimed while a lives, starved
    assert (b.started, b.free, await _answer(r), await _pending(r)) == ([], [0], None, 1)  # left pending
    a.proceed.set()
    await opening
    assert (a.admitted, (await _record(r))["pod"], await _pending(r)) == ([SID], "pod-a", 0)


async def test_a_pod_that_lost_its_open_to_another_ends_its_session(r):
    a, b = StandInHost(r, "pod-a"), StandInHost(r, "pod-b")
    entry = await _read(r, a)
    a.proceed.clear()
    opening = asyncio.create_task(SessionOpens(a).open(entry))
    while not a.started:
        await asyncio.sleep(0.01)  # poll: a is starting
    await r.delete(keys.session(POOL, SID))  # a starved past its record's lease...
    await SessionOpens(b).open(await _hand_to(r, b, entry.entry_id))  # ...and its claim: b opens it
    assert b.admitted == [SID] and (await _answer(r))["executor"] == "pod-b/sessions"
    a.proceed.set()
    await opening
    assert (a.admitted, a.discarded) == ([], [SID])  # one session: a's is ended, not answered
    assert (await _record(r))["pod"] == "pod-b"


async def test_a_dead_pods_half_done_open_is_opened_once_its_record_lapses(r):
    dead, b = StandInHost(r, "pod-dead"), StandInHost(r, "pod-b")
    entry = await _read(r, dead)
    # What pod-dead left: its "opening" record (lease running), no answer, the entry pending.
    session = dead.new_session(SID, 0, 60, 600, None)
    await r.set(keys.session(POOL, SID), session.record("pod-dead", "opening"), px=300)
    reclaimed = await _hand_to(r, b, entry.entry_id)
    await SessionOpens(b).open(reclaimed)
    assert (b.started, await _pending(r)) == ([], 1)  # its lease runs: maybe it lives
    while await r.exists(keys.session(POOL, SID)):
        await asyncio.sleep(0.05)  # poll: the lease lapses
    await SessionOpens(b).open(reclaimed)  # reclaimed again after the idle time
    assert b.admitted == [SID] and (await _record(r))["pod"] == "pod-b" and await _pending(r) == 0


async def test_a_session_that_fails_to_start_is_answered_failed_and_recorded_lost(r):
    a = StandInHost(r, "pod-a")
    a.fail_start = True
    await SessionOpens(a).open(await _read(r, a))
    answer, rec = await _answer(r), await _record(r)
    assert answer["status"] == "failed" and "no interpreter" in answer["error"]
    assert (rec["state"], rec["lost"]) == ("ended", True) and await _pending(r) == 0
