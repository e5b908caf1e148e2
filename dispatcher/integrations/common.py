"""What every integration hands back: the parts of a Result an agent needs, and a text
rendering of them for a language model."""

from __future__ import annotations

from pydantic import BaseModel

from warmfleet.contract.schema import Result

TOOL_NAME = "run_python"
TOOL_DESCRIPTION = (
    "Run a Python 3 snippet in an isolated, network-less sandbox and return its stdout, stderr, "
    "exit code and status (ok, error, timeout, cpu_limit, memory_limit, output_limit, rejected, failed). "
    "Each call starts from an empty working directory. As in a notebook, the value of the last line "
    "comes back (e.g. `df.head()`), display(obj) shows an object, and matplotlib figures come back as images."
)
SESSION_TOOL_DESCRIPTION = (
    "Run Python 3 code in an isolated, network-less sandbox that keeps its state, like a notebook: "
    "variables, imports and files in the working directory persist across calls until reset_session. "
    "Returns stdout, stderr, exit code and status (ok, error, timeout, cpu_limit, memory_limit, output_limit, "
    "rejected, failed, session_ended); the value of the last line comes back as in a notebook, display(obj) "
    "shows an object, and matplotlib figures come back as images."
)
RESET_TOOL_NAME = "reset_session"
RESET_TOOL_DESCRIPTION = "Forget every variable and file: the next run_python call starts in a fresh sandbox."


class RunOutput(BaseModel):
    status: str
    exit_code: int | None
    stdout: str
    stderr: str
    error: str | None = None
    duration_s: float
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    job_id: str
    files: list[str] = []  # names of the files the job returned (out/, figure-N.png)
    text: str | None = None  # the last expression's value, as a REPL shows it
    error_name: str | None = None
    error_value: str | None = None

    @classmethod
    def from_result(cls, result: Result) -> "RunOutput":
        return cls(
            status=result.status.value,
            exit_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
            error=result.error,
            duration_s=result.duration_s,
            stdout_truncated=result.stdout_truncated,
            stderr_truncated=result.stderr_truncated,
            job_id=result.job_id,
            files=sorted(result.files),
            text=result.text,
            error_name=result.error_name,
            error_value=result.error_value,
        )


def as_text(result: Result) -> str:
    """A compact rendering for a model's context: status first, then the streams."""
    lines = [f"status: {result.status.value}", f"exit_code: {result.exit_code}"]
    if result.error:
        lines.append(f"error: {result.error}")
    lines.append("stdout:" + (" (truncated)" if result.stdout_truncated else ""))
    lines.append(result.stdout.rstrip("\n"))
    shown = [o["data"]["text/plain"] for o in result.outputs if "text/plain" in o["data"]]
    if shown:  # display() outputs and the last expression's value, in order, after stdout
        lines.append("result:" + (" (some outputs dropped)" if result.outputs_truncated else ""))
        lines.extend(shown)
    if result.stderr:
        lines.append("stderr:" + (" (truncated)" if result.stderr_truncated else ""))
        lines.append(result.stderr.rstrip("\n"))
    return "\n".join(lines)
