"""The session records of the contract (warmfleet/contract/sessions.py): what both sides
read and write, and the Lua scripts that read the record by field name."""

from __future__ import annotations

import re

import pytest

from dispatcher import session as client_session
from executor.sessions import calls
from warmfleet.contract import lua, messages
from warmfleet.contract.schema import Job
from warmfleet.contract.sessions import SessionCall, SessionOpen, SessionRecord, SessionState

RECORD_READERS = ["session_open_answer", "session_lease_renew", "session_call_submit"]


@pytest.mark.parametrize("name", RECORD_READERS)
def test_the_lua_scripts_read_only_fields_and_states_the_record_defines(name):
    source = lua.script(name)  # warmfleet/contract/lua/NAME.lua
    fields = set(re.findall(r"\[['\"](\w+)['\"]\]", source))
    states = set(re.findall(r"(?:==|~=) ['\"](\w+)['\"]", source))
    assert "cjson.decode" in source and fields and fields <= set(SessionRecord.model_fields), fields
    assert states and states <= {s.value for s in SessionState}, states


def test_a_call_carries_the_jobs_fields_by_name_to_the_session_process():
    job = Job(job_id="c1", code="print(1)", timeout=5.0, cpu_time=2.0, memory_mb=128, files={"a": "eA=="}, reply_to="me",
              language="bash", stream=True)
    call = SessionCall.from_entry(SessionCall.from_job(job, context="ctx-1").entry())
    own = {"call_id", "context"}  # the call's own: its id, and whose globals it runs in
    assert set(SessionCall.model_fields) - own <= set(Job.model_fields)
    assert call.call_id == job.job_id and call.context == "ctx-1" and all(
        getattr(call, name) == getattr(job, name) for name in SessionCall.model_fields if name not in own)
    assert (call.language, call.stream) == ("bash", True)
    run = calls.session_run(call)
    shared = set(messages.Call.fields()) & set(SessionCall.model_fields)
    assert shared == set(SessionCall.model_fields) - {"call_id", "reply_to", "submitted_at"}  # all it acts on
    assert (run.context, run.language) == ("ctx-1", "bash")
    assert all(getattr(run, name) == getattr(call, name) for name in shared)


def test_a_call_reply_carries_every_field_of_a_jobs_outcome():
    assert set(messages.RunOutcome.fields()) <= set(messages.CallOutcome.fields())
    reply = messages.CallOutcome(status="ok", seq=1, cpu_total_s=2.0, stdout="x")
    assert reply.outcome() == messages.RunOutcome(status="ok", stdout="x")


def test_a_malformed_call_is_answered_only_where_it_names_an_id():
    assert SessionCall.salvage({"call": '{"call_id": "c1", "timeout": "soon", "reply_to": "me"}'}) == ("c1", "me")
    assert SessionCall.salvage({"call": '{"call_id": "../x"}'}) == (None, None)
    assert SessionCall.salvage({"call": "[1]"}) == (None, None)
    assert SessionCall.salvage({}) == (None, None)


def test_an_open_and_a_record_round_trip():
    req = SessionOpen.from_entry(SessionOpen(session_id="s1", idle_timeout=5, max_lifetime=9, reply_to="me").entry())
    assert (req.session_id, req.idle_timeout, req.max_lifetime, req.reply_to) == ("s1", 5.0, 9.0, "me")
    with pytest.raises(ValueError):
        SessionOpen.from_entry({"open": '{"session_id": "../x"}'})
    rec = SessionRecord(session_id="s1", pod="p", state=SessionState.ENDED, reason="lost: x", lost=True)
    assert SessionRecord.from_json(rec.to_json()) == rec
    assert client_session.ended_error("s1", rec.to_json()).reason == "lost: x"
