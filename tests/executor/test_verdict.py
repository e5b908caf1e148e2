"""One budget verdict for jobs and session calls (executor/lean/verdict.py): the same
facts give the same Status; only the words say whether a job was killed or a call
interrupted."""

from __future__ import annotations

import signal

import pytest

from executor.lean.verdict import CALL_WORDS, JOB_WORDS, Overrun, of_wait_status, verdict
from warmfleet.contract.messages import Call, RunJob, Status

JOB = RunJob(code="", language="python", timeout=2.0, cpu_time=1.0, memory_mb=64)
CALL = Call(code="", language="python", timeout=2.0, cpu_time=1.0, memory_mb=64, seq=4)


@pytest.mark.parametrize("overrun,status", [
    (Overrun.OUTPUT, Status.OUTPUT_LIMIT), (Overrun.CPU, Status.CPU_LIMIT), (Overrun.MEMORY, Status.MEMORY_LIMIT),
    (Overrun.TIMEOUT, Status.TIMEOUT), (Overrun.PROCESSES, Status.ERROR),
])
def test_a_budget_the_executor_stopped_for_comes_first_for_both(overrun, status):
    assert verdict(JOB, overrun, 0, words=CALL_WORDS)[0] is status
    assert verdict(CALL, overrun, 0, words=CALL_WORDS)[0] is status
    if overrun in JOB_WORDS:
        assert of_wait_status(JOB, overrun, 0, 0.0, False)[0] is status


def test_the_words_say_what_followed():
    assert of_wait_status(JOB, Overrun.CPU, signal.SIGKILL, 1.0, False)[2] == \
        "CPU-time limit of 1.0 s exceeded by the job's processes"
    assert verdict(CALL, Overrun.CPU, 1, words=CALL_WORDS)[2] == "CPU-time limit of 1.0 s exceeded; the call was interrupted"
    assert of_wait_status(JOB, None, signal.SIGALRM, 0.0, False)[:3] == (
        Status.TIMEOUT, -signal.SIGALRM, "wall-clock limit of 2.0 s exceeded")
    assert verdict(CALL, None, None, interrupted=True, words=CALL_WORDS) == (
        Status.TIMEOUT, None, "wall-clock limit of 2.0 s exceeded; the call was interrupted")


def test_what_the_run_itself_said():
    assert of_wait_status(JOB, None, 0, 0.0, False) == (Status.OK, 0, None)
    assert verdict(CALL, None, 0, words=CALL_WORDS) == (Status.OK, 0, None)
    assert of_wait_status(JOB, None, 1 << 8, 0.0, True) == (Status.MEMORY_LIMIT, 1, "memory limit of 64 MiB exceeded")
    assert verdict(CALL, None, 1, memory_error=True, words=CALL_WORDS) == (
        Status.MEMORY_LIMIT, 1, "memory limit of 64 MiB exceeded")
    assert verdict(CALL, None, 1, raised="ValueError", words=CALL_WORDS) == (Status.ERROR, 1, "ValueError raised")
    assert verdict(CALL, None, 3, words=CALL_WORDS) == (Status.ERROR, 3, "exited with code 3")
    assert of_wait_status(JOB, None, signal.SIGSEGV, 0.0, False) == (Status.ERROR, -signal.SIGSEGV, "killed by signal SIGSEGV")
    assert of_wait_status(JOB, None, signal.SIGKILL, 0.99, False)[0] is Status.CPU_LIMIT  # RLIMIT_CPU's kill
