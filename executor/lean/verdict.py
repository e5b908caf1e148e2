"""How a job or a session call ended, as a Status: the one budget verdict both take.

The facts differ only in where they come from: a job child's wait status and its
MemoryError record (the runner, executor/lean/runner.py); a session call's own account
(executor/lean/session_process.py) and the budget the supervisor stopped it for
(executor/sessions/handle.py). A budget the executor stopped the run for comes first;
then what the run itself said. The wording says what followed: a job was killed, a call
was interrupted (its session lives on).
"""

from __future__ import annotations

import enum
import os
import signal
import sys

from warmfleet.contract.messages import RunJob, Status


class Overrun(enum.Enum):
    """A budget the executor stopped a job or call for, before it ended by itself; the
    value names the budget (a call that would not stop is reported with it)."""

    TIMEOUT = "wall-clock limit"
    CPU = "CPU-time limit"
    MEMORY = "memory limit"
    OUTPUT = "output cap"
    PROCESSES = "process limit"  # a session's: at its process cap (a fork bomb)
    STOPPED = "stop request"  # a session call's client went away or asked to stop it


STATUS_OF = {Overrun.TIMEOUT: Status.TIMEOUT, Overrun.CPU: Status.CPU_LIMIT, Overrun.MEMORY: Status.MEMORY_LIMIT,
             Overrun.OUTPUT: Status.OUTPUT_LIMIT, Overrun.PROCESSES: Status.ERROR, Overrun.STOPPED: Status.ERROR}

# What the error says of each budget, for a job (killed) and for a session call (interrupted).
JOB_WORDS = {
    Overrun.OUTPUT: "output exceeded the per-stream cap; the job was killed",
    Overrun.CPU: "CPU-time limit of {cpu_time} s exceeded by the job's processes",
    Overrun.MEMORY: "memory limit of {memory_mb} MiB exceeded by the job's processes",
    Overrun.TIMEOUT: "wall-clock limit of {timeout} s exceeded",
}
CALL_WORDS = {
    Overrun.OUTPUT: "output exceeded the per-stream cap; the call was interrupted",
    Overrun.CPU: "CPU-time limit of {cpu_time} s exceeded; the call was interrupted",
    Overrun.MEMORY: "memory limit of {memory_mb} MiB exceeded; the call was interrupted",
    Overrun.PROCESSES: "the call reached the session's process limit; it was interrupted and its processes killed",
    Overrun.TIMEOUT: "wall-clock limit of {timeout} s exceeded; the call was interrupted",
    Overrun.STOPPED: "stopped: its client went away or asked to stop it; the session goes on",
}

Verdict = tuple[Status, "int | None", "str | None"]  # status, exit code, error


def verdict(run: RunJob, overrun: Overrun | None, exit_code: int | None, *, sig: int | None = None,
            cpu_s: float = 0.0, memory_error: bool = False, interrupted: bool = False,
            raised: str | None = None, words: dict = JOB_WORDS) -> Verdict:
    """`exit_code`: the process's (a job's), or the call's (a SystemExit's code, 1 for an
    exception, None once interrupted); `sig`: the signal that ended a job child;
    `interrupted`: the call took the wall-clock interrupt; `raised`: the exception a call
    raised, by name."""
    if overrun is not None:
        return STATUS_OF[overrun], exit_code, words[overrun].format(**run.as_dict())
    if interrupted or sig == signal.SIGALRM:
        return Status.TIMEOUT, exit_code, words[Overrun.TIMEOUT].format(timeout=run.timeout)
    if sig in (signal.SIGXCPU, signal.SIGKILL) and cpu_s >= run.cpu_time * 0.95:
        return Status.CPU_LIMIT, exit_code, f"CPU-time limit of {run.cpu_time} s exceeded"
    if memory_error:
        return Status.MEMORY_LIMIT, exit_code, f"memory limit of {run.memory_mb} MiB exceeded"
    if exit_code == 0:
        return Status.OK, 0, None
    if sig is not None:
        return Status.ERROR, exit_code, f"killed by signal {signal.Signals(sig).name}"
    if raised is not None:
        return Status.ERROR, exit_code, f"{raised} raised"
    return Status.ERROR, exit_code, f"exited with code {exit_code}"


def of_wait_status(run: RunJob, overrun: Overrun | None, status: int, cpu_s: float, memory_error: bool) -> Verdict:
    """A job child's: from its wait status (a signal is exit code -signal)."""
    if os.WIFEXITED(status):
        return verdict(run, overrun, os.WEXITSTATUS(status), cpu_s=cpu_s, memory_error=memory_error)
    sig = os.WTERMSIG(status)
    return verdict(run, overrun, -sig, sig=sig, cpu_s=cpu_s, memory_error=memory_error)


def exit_status(exc: SystemExit) -> int:
    """The exit code a SystemExit stands for, as `python file.py` would end with it (a
    message that is not a number is printed, and means 1)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except BaseException:  # noqa: BLE001
        pass
    return 1
