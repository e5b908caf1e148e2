"""An open whose pod dies before answering it: another pod takes it over, the client's
open succeeds long before its 60 s timeout, and exactly one session exists. The pod is
made to stop at that point of the open (WARMFLEET_SESSION_OPEN_FAULT, so the test is
deterministic), then its sandbox is SIGKILLed; the fleet's replacement pod starts
without the fault and is the one with room."""

from __future__ import annotations

import json
import threading
import time

import pytest
from support.sessions_fleet import start_fleet

from dispatcher import Client
from warmfleet.contract import keys
from warmfleet.cli import status as fleet_status

FAULT = "WARMFLEET_SESSION_OPEN_FAULT"
BOUND_S = 40.0  # from the pod's death to the open answered (measured ~15-25 s, see the report)


def _records(r, pool: str) -> list[dict]:
    return [json.loads(r.get(k)) for k in r.scan_iter(keys.session(pool, "*")) if not k.endswith(":calls")]


def _wait(what, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (got := what()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)  # poll with a deadline
    return got


@pytest.mark.timeout(200)
@pytest.mark.parametrize("fault", ["after_read", "before_answer"])
def test_an_open_whose_pod_dies_unanswered_is_opened_by_another_pod(fault):
    fleet = start_fleet(env={FAULT: fault})
    try:
        dead = fleet.pods[0]
        outcome: list = []

        def opening() -> None:
            with Client(fleet.client_url) as c:
                try:
                    s = c.session(open_timeout=60)
                    outcome.append((time.monotonic(), s.id, s.run("print('hi')").stdout))
                    s.close()
                except BaseException as exc:  # noqa: BLE001 - the test inspects it
                    outcome.append(exc)

        t = threading.Thread(target=opening)
        with Client(fleet.client_url) as probe:
            r, pool = probe.redis, probe.pool
            t.start()
            # The pod read the open through the group (and, "before_answer", wrote the
            # session's record and started its process), and will never answer it.
            _wait(lambda: r.xpending_range(keys.session_opens(pool), keys.CONSUMER_GROUP, min="-", max="+", count=1,
                                           consumername=f"{dead.pod_id}/sessions"))
            if fault == "before_answer":
                _wait(lambda: [x for x in _records(r, pool) if x["state"] == "opening" and x["pod"] == dead.pod_id])
            fleet.executor_values.pop("session_open_fault")  # its replacement opens normally
            killed_at = time.monotonic()
            dead.sandbox.signal("KILL")
            t.join(BOUND_S + 30)
            assert not t.is_alive()
            answered_at, sid, said = outcome[0] if isinstance(outcome[0], tuple) else pytest.fail(repr(outcome[0]))
            took = answered_at - killed_at
            print(f"\n[{fault}] open answered {took:.1f} s after its pod was killed")
            assert took < BOUND_S
            assert said == "hi\n"
            # Exactly one session: one record, opened by the replacement pod, and one
            # session counted open on it, then closed.
            (rec,) = [x for x in _records(r, pool) if x["session_id"] == sid]
            assert rec["pod"] != dead.pod_id and rec["state"] == "ended" and rec["reason"] == "closed", rec
            assert len(_records(r, pool)) == 1
            # the heartbeat publishes the pods' counts: poll with a deadline
            st = _wait(lambda: (x := fleet_status.read_status(r, pool)).sessions_ended.get("closed") and x)
            assert (st.sessions_ended, st.sessions_open) == ({"closed": 1}, 0), st
    finally:
        fleet.stop()
