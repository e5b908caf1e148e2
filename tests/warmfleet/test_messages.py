import asyncio
import os

import pytest

from warmfleet.contract import messages


def test_frames_round_trip_through_a_pipe():
    r, w = os.pipe()
    msg = {"t": "job", "code": "print('é')\n" * 100, "n": 3}
    messages.write_frame(w, msg)
    assert messages.read_frame(r) == msg
    os.close(w)
    with pytest.raises(EOFError):
        messages.read_frame(r)
    os.close(r)


def test_a_frame_over_the_bound_is_refused_on_both_ends():
    r, w = os.pipe()
    os.write(w, messages.HEADER.pack(messages.MAX_FRAME + 1))
    with pytest.raises(messages.FrameError):
        messages.read_frame(r)
    os.close(r)
    os.close(w)
    with pytest.raises(messages.FrameError):
        messages.encode_frame({"t": "chunk", "stream": "stdout", "data": "x" * (messages.MAX_FRAME + 1)})


async def test_the_supervisor_end_uses_the_same_bound():
    import socket

    from executor.runner_handle import RunnerGone, RunnerHandle

    ours, theirs = socket.socketpair()
    handle = RunnerHandle("python", None)  # type: ignore[arg-type]  # never spawned here
    handle._reader, handle._writer = await asyncio.open_unix_connection(sock=ours)
    theirs.sendall(messages.encode(messages.Ready()) + messages.HEADER.pack(messages.MAX_FRAME + 1))
    assert await handle.recv() == messages.Ready()
    with pytest.raises(RunnerGone, match="exceeds"):
        await handle.recv()
    handle.close()
    theirs.close()


def test_typed_messages_round_trip_and_unknown_ones_are_refused():
    job = messages.RunJob(code="print(1)", language="python", timeout=1.0, cpu_time=1.0, memory_mb=64, files={"a": "eA=="})
    assert messages.from_frame(messages.to_frame(job)) == job
    assert messages.RunJob.from_child_payload(job.child_payload()) == job
    outcome = messages.RunOutcome(status=messages.Status.OK.value, exit_code=0)
    assert messages.from_frame(messages.decode_body(messages.encode(outcome)[4:])) == outcome
    with pytest.raises(messages.FrameError):
        messages.from_frame({"t": "launch"})
    with pytest.raises(messages.FrameError):
        messages.from_frame({"t": "hello", "pid": 1, "extra": 2})


def test_the_runner_message_carries_only_job_fields():
    """The slot copies RunJob's fields from the Job by name: each must exist there."""
    from executor.slot import EXECUTOR_FIELDS, run_job
    from warmfleet.contract.schema import Job

    copied = [name for name in messages.RunJob.fields() if name not in EXECUTOR_FIELDS]
    assert set(copied) <= set(Job.model_fields) and not set(EXECUTOR_FIELDS) & set(Job.model_fields)
    job = Job(job_id="j", code="print(1)", files={"a": "eA=="}, stream=True)
    assert run_job(job).as_dict() == {**{name: getattr(job, name) for name in copied}, "egress": None}


def test_result_fields_come_from_the_runner_outcome_or_the_slot():
    from warmfleet.contract.schema import Result

    slot_adds = {"job_id", "executor", "queue_wait_s", "egress"}  # egress: from the pool's egress proxy
    session_only = {"execution_count"}  # a session call's number in its session
    assert set(messages.RunOutcome.fields()) | slot_adds | session_only == set(Result.model_fields)
