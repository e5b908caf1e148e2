"""When a client declares a session lost: a record that says so at once, a missing record
only once it stayed missing for the grace (a pod starved by a fork bomb renews its lease
late), on a fake clock."""

from __future__ import annotations

import json

from dispatcher import SessionEnded, SessionLost
from dispatcher.session import RecordWatch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


OPEN = json.dumps({"state": "open"})


def test_a_missing_record_is_lost_only_once_missing_for_the_grace():
    clock = Clock()
    watch = RecordWatch("s1", grace_s=10.0, clock=clock)
    assert watch.check(OPEN) is None
    assert watch.check(None) is None  # missing: the clock starts
    clock.now += 9.9
    assert watch.check(None) is None
    clock.now += 0.1
    err = watch.check(None)
    assert isinstance(err, SessionLost) and "executor died" in err.reason


def test_a_record_that_comes_back_restarts_the_grace():
    clock = Clock()
    watch = RecordWatch("s1", grace_s=10.0, clock=clock)
    assert watch.check(None) is None
    clock.now += 8
    assert watch.check(OPEN) is None  # the starved pod renewed its lease: not lost
    clock.now += 1
    assert watch.check(None) is None  # a new gap counts from now, not from the first
    clock.now += 9.5
    assert watch.check(None) is None
    clock.now += 0.5
    assert isinstance(watch.check(None), SessionLost)


def test_a_record_that_says_the_session_ended_is_final_at_once():
    watch = RecordWatch("s1", grace_s=10.0, clock=Clock())
    closed = watch.check(json.dumps({"state": "ended", "reason": "closed", "lost": False}))
    assert type(closed) is SessionEnded and closed.reason == "closed"
    died = watch.check(json.dumps({"state": "ended", "reason": "died: exited", "lost": True}))
    assert isinstance(died, SessionLost) and died.reason == "died: exited"


def test_no_grace_means_a_missing_record_is_lost_at_once():
    assert isinstance(RecordWatch("s1", grace_s=0.0, clock=Clock()).check(None), SessionLost)
