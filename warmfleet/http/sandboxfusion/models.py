"""SandboxFusion's wire format, as its server (`sandbox/server/sandbox_api.py`,
`sandbox/runners/types.py`) and its client package (`sandbox_fusion/models.py`) define
it: the same field names, defaults and status strings, so its client parses our answers.

`language` is any string here (SandboxFusion lists ~30): one this fleet does not run is
answered with SandboxFusion's own `SandboxError` status and a message, not a 422."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class CommandRunStatus(str, Enum):
    """How one command ended (SandboxFusion's names)."""

    Finished = "Finished"
    Error = "Error"  # the sandbox could not run it
    TimeLimitExceeded = "TimeLimitExceeded"


class RunStatus(str, Enum):
    """The whole request's outcome (SandboxFusion's names)."""

    Success = "Success"  # finished with return code 0
    Failed = "Failed"  # a non-zero return code or a time limit
    SandboxError = "SandboxError"  # not run: the message says why


class CommandRunResult(BaseModel):
    status: CommandRunStatus
    execution_time: float | None = None
    return_code: int | None = None
    stdout: str | None = None
    stderr: str | None = None


class RunCodeRequest(BaseModel):
    compile_timeout: float = Field(10, description="accepted and unused: python and bash need no compile step")
    run_timeout: float = Field(10, description="wall-clock and CPU-time limit in seconds (capped at the fleet's maxima)")
    memory_limit_MB: int = Field(-1, description="memory limit in MiB; -1: the fleet's default")
    code: str = Field(..., examples=['print("hello")'])
    stdin: str | None = Field(None, description="text given to the program on its standard input")
    language: str = Field(..., examples=["python"], description="python or bash; another gets SandboxError")
    files: dict[str, str | None] = Field(default_factory=dict, description="relative path -> base64 content")
    fetch_files: list[str] = Field(default_factory=list, description="relative paths to return after the run")
    args: list[str] = Field(default_factory=list, description="accepted and unused (pytest arguments)")


class RunCodeResponse(BaseModel):
    status: RunStatus
    message: str
    compile_result: CommandRunResult | None = None
    run_result: CommandRunResult | None = None
    executor_pod_name: str | None = None
    files: dict[str, str] = Field(default_factory=dict, description="fetched path -> base64 content")


class RunJupyterRequest(BaseModel):
    cells: list[str] = Field(..., examples=[["a = 123", "a", "print(a)"]])
    cell_timeout: float = Field(0, description="limit per cell in seconds; 0: what is left of total_timeout")
    total_timeout: float = Field(45, description="limit for all the cells together, in seconds")
    memory_limit_MB: int = Field(-1, description="memory limit per cell in MiB; -1: the fleet's default")
    kernel: str = Field("python3", description="python3 only")
    files: dict[str, str | None] = Field(default_factory=dict, description="relative path -> base64 content")
    fetch_files: list[str] = Field(default_factory=list, description="relative paths to return after the cells")


class CellRunResult(BaseModel):
    """One cell, as a Jupyter kernel reports it: streams, display MIME bundles (the
    value of the last expression included, as `execute_result`), and errors as
    `{"ename", "evalue", "traceback"}`."""

    stdout: str
    stderr: str
    display: list[dict[str, Any]]
    error: list[dict[str, Any]]


class RunJupyterResponse(BaseModel):
    status: RunStatus
    message: str
    driver: CommandRunResult | None = None
    cells: list[CellRunResult] = Field(default_factory=list)
    executor_pod_name: str | None = None
    files: dict[str, str] = Field(default_factory=dict)
