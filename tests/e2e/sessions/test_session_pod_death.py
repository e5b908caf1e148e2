"""A session whose pod dies: the next call, and a call waiting at the time, raise
SessionLost once the pod's lease on the session expired (10 s) and the record stayed
missing for the client's grace (10 s, WARMFLEET_SESSION_LOST_GRACE_S): about 20 s."""

from __future__ import annotations

import threading
import time

import pytest
from support.sessions_fleet import start_fleet

from dispatcher import Client, SessionLost
from warmfleet.contract import keys

# lease 10 s + grace 10 s + the client's recheck 1 s, with room for a loaded machine
LOST_WITHIN_S = 35.0


@pytest.fixture
def own_fleet():
    f = start_fleet()
    yield f
    f.stop()


@pytest.mark.timeout(150)
def test_killing_the_pod_loses_its_sessions(own_fleet):
    with Client(own_fleet.client_url) as c:
        idle = c.session()
        busy = c.session()
        idle.run("x = 1")
        outcome: list[BaseException | object] = []

        def waiting_call() -> None:
            try:
                outcome.append(busy.run("import time; time.sleep(60)", timeout=120))
            except BaseException as exc:  # noqa: BLE001 - the test inspects it
                outcome.append(exc)
            outcome.append(time.monotonic())

        t = threading.Thread(target=waiting_call)
        with Client(own_fleet.client_url) as probe:
            t.start()
            deadline = time.monotonic() + 20
            while not probe.redis.xlen(keys.session_calls(probe.pool, busy.id)) and time.monotonic() < deadline:
                time.sleep(0.05)  # poll with a deadline: the call is in its stream
        own_fleet.pods[0].sandbox.signal("KILL")
        killed_at = time.monotonic()
        t.join(LOST_WITHIN_S + 15)
        assert not t.is_alive()
        assert isinstance(outcome[0], SessionLost), outcome
        took = outcome[1] - killed_at
        print(f"\nthe waiting call raised SessionLost {took:.1f} s after its pod was killed")
        assert took < LOST_WITHIN_S
        with pytest.raises(SessionLost) as info:
            idle.run("print(x)")
        assert "executor died" in info.value.reason


@pytest.mark.timeout(150)
def test_a_drained_pod_ends_its_sessions_as_lost_after_a_bounded_wait(own_fleet):
    """Recycling or scale-in drains the pod: its sessions keep working for
    WARMFLEET_SESSION_DRAIN_S (3 s here), then end as lost, saying why."""
    import json

    with Client(own_fleet.client_url) as c:
        s = c.session()
        s.run("x = 1")
        pod_id = own_fleet.pods[0].pod_id
        c.redis.rpush(keys.control(c.pool, pod_id), "drain")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rec = json.loads(c.redis.get(keys.session(c.pool, s.id)) or "{}")
            if rec.get("state") == "ended":
                break
            time.sleep(0.1)  # poll with a deadline
        assert rec["lost"] and rec["reason"].startswith("drained"), rec
        with pytest.raises(SessionLost) as info:
            s.run("print(x)")
        assert "drained" in info.value.reason
        # Stopped, it removed its consumer of the opens (it owned none of them).
        deadline = time.monotonic() + 60
        while any(x["name"].startswith(pod_id) for x in c.redis.xinfo_consumers(keys.session_opens(c.pool),
                                                                                keys.CONSUMER_GROUP)):
            assert time.monotonic() < deadline, "the drained pod's consumer of the opens is still there"
            time.sleep(0.2)  # poll with a deadline: the pod stops after its drain
