"""What the supervisor accepts as a session's reply: only the reply to the call it sent,
well formed. Anything else ends the session (SessionBroke), never the supervisor."""

from __future__ import annotations

import pytest

from executor.sessions.handle import SessionBroke, checked_reply
from warmfleet.contract import messages

REPLY = {"t": "result", "seq": 3, "status": "ok", "exit_code": 0, "error": None, "duration_s": 0.01, "cpu_s": 0.0,
         "cpu_total_s": 1.5, "max_rss_bytes": 1 << 20, "files": {"a.txt": "aGk="}, "files_truncated": False}


def _checked(frame: dict, seq: int) -> messages.CallOutcome:
    """As the handle reads a frame: decoded in the session protocol, then checked."""
    try:
        msg = messages.from_frame(frame, "session")
    except messages.FrameError as exc:
        raise SessionBroke(str(exc)) from None
    return checked_reply(msg, seq)


def test_the_reply_to_the_call_sent_is_accepted():
    reply = _checked(dict(REPLY), 3)
    assert messages.to_frame(reply) == {**messages.to_frame(messages.CallOutcome(status="ok")), **REPLY}


@pytest.mark.parametrize("change", [
    {"seq": 2},  # a stray frame from before, or a forged one
    {"seq": None},
    {"t": "ready"},
    {"t": "job"},  # another protocol's message
    {"status": "hacked"},
    {"status": "cpu_limit"},  # only the supervisor stops a call for a budget
    {"exit_code": "0"},
    {"exit_code": True},
    {"error": 5},
    {"duration_s": "1"},
    {"max_rss_bytes": [1]},
    {"files": {"a.txt": 5}},
    {"files": "a.txt"},
    {"files_truncated": "no"},
    {"extra": 1},
])
def test_anything_else_breaks_the_session(change):
    with pytest.raises(SessionBroke):
        _checked({**REPLY, **change}, 3)
