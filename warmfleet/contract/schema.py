"""The contract between dispatcher and executor: job, result, status, limits.

Defined once here; both sides import it. A job travels as one JSON field on the
stream entry; a result as one JSON string under its result key.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from warmfleet.contract.messages import Status

SCHEMA_VERSION = 1
LANGUAGES = ("python", "bash")
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class FleetLimits(BaseModel):
    """Defaults a job gets when it asks for nothing, and maxima it may not exceed.

    Defaults follow the field's norm (Judge0, Piston, Riza): wall 30 s, CPU 10 s,
    memory 256 MiB, 1 MiB of output per stream, 16 MiB files, 64 processes.
    """

    model_config = ConfigDict(frozen=True)

    timeout: float = Field(30.0, description="Wall-clock seconds a job gets when it asks for none.")
    cpu_time: float = Field(10.0, description="CPU seconds a job gets when it asks for none.")
    memory_mb: int = Field(256, description="Address-space MiB a job gets when it asks for none.")
    max_timeout: float = Field(300.0, description="The longest wall clock a job may ask for.")
    max_cpu_time: float = Field(300.0, description="The most CPU seconds a job may ask for.")
    max_memory_mb: int = Field(4096, description="The most address-space MiB a job may ask for.")
    max_code_bytes: int = Field(1 << 20, description="The largest code a job may carry.")
    output_bytes: int = Field(1 << 20, description="Bytes kept of each of a job's stdout and stderr.")
    file_size_bytes: int = Field(16 << 20, description="The largest file a job may write (RLIMIT_FSIZE).")
    processes: int = Field(64, description="Processes a job may run at once.")
    open_files: int = Field(256, description="Files a job process may hold open.")
    max_files: int = Field(100, description="Input files per job, and output files returned per job.")
    max_input_bytes: int = Field(8 << 20, description="All input files of a job, decoded.")
    max_output_files_bytes: int = Field(8 << 20, description="All output files returned with a result.")


# The one place job defaults live: a job that asks for nothing gets these budgets.
DEFAULT_LIMITS = FleetLimits()


class JobError(ValueError):
    """A job the fleet will not run; the message says why, in words a caller can act on."""


class Job(BaseModel):
    """One unit of work as it sits on the stream."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    job_id: str = Field(pattern=JOB_ID_RE.pattern)
    code: str = Field(min_length=1)
    language: str = "python"
    timeout: float = DEFAULT_LIMITS.timeout
    cpu_time: float = DEFAULT_LIMITS.cpu_time
    memory_mb: int = DEFAULT_LIMITS.memory_mb
    submitted_at: float = Field(default_factory=time.time)
    reply_to: str | None = None
    files: dict[str, str] = Field(default_factory=dict)  # relative path -> base64 content
    stream: bool = False  # publish stdout/stderr chunks while the job runs
    env: dict[str, str] = Field(default_factory=dict)  # environment variables for this job or call only
    # W3C trace context of the span that submitted the job (warmfleet/plumbing/tracing.py); {} untraced.
    trace: dict[Literal["traceparent", "tracestate"], Annotated[str, Field(max_length=512)]] = Field(default_factory=dict)

    def check(self, limits: FleetLimits) -> "Job":
        """Raise JobError unless this job fits the fleet's rules. Returns self."""
        check_request(
            self.code,
            language=self.language,
            timeout=self.timeout,
            cpu_time=self.cpu_time,
            memory_mb=self.memory_mb,
            limits=limits,
        )
        check_files({name: _b64decode(name, data) for name, data in self.files.items()}, limits)
        check_env(self.env)
        return self

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> "Job":
        return cls.model_validate_json(raw)


def check_request(
    code: object,
    *,
    language: object,
    timeout: object,
    cpu_time: object,
    memory_mb: object,
    limits: FleetLimits,
) -> None:
    """The single validation both the client (before enqueueing) and the executor run."""
    if not isinstance(code, str):
        raise JobError(f"code must be a str, got {type(code).__name__}")
    if not code.strip():
        raise JobError("code is empty")
    size = len(code.encode("utf-8", "surrogatepass"))
    if size > limits.max_code_bytes:
        raise JobError(f"code is {size} bytes; this fleet accepts at most {limits.max_code_bytes}")
    if "\x00" in code:
        raise JobError("code contains a NUL byte")
    if language not in LANGUAGES:
        raise JobError(f"unknown language {language!r}; this fleet runs {', '.join(LANGUAGES)}")
    _check_budget("timeout", timeout, limits.max_timeout, "s")
    _check_budget("cpu_time", cpu_time, limits.max_cpu_time, "s")
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int):
        raise JobError(f"memory_mb must be an int, got {type(memory_mb).__name__}")
    _check_budget("memory_mb", memory_mb, limits.max_memory_mb, " MiB")
    if memory_mb < 32:
        raise JobError("memory_mb must be at least 32: the interpreter alone needs that")


def check_files(files: object, limits: FleetLimits) -> None:
    """Input files: a mapping of safe relative paths to bytes, bounded in count and size."""
    if not isinstance(files, dict):
        raise JobError(f"files must be a mapping of path -> bytes, got {type(files).__name__}")
    if len(files) > limits.max_files:
        raise JobError(f"{len(files)} input files; this fleet accepts at most {limits.max_files}")
    total = 0
    for name, data in files.items():
        check_relative_path(name)
        if not isinstance(data, (bytes, bytearray)):
            raise JobError(f"file {name!r} must be bytes, got {type(data).__name__}")
        total += len(data)
    if total > limits.max_input_bytes:
        raise JobError(f"input files total {total} bytes; this fleet accepts at most {limits.max_input_bytes}")


MAX_ENV = 100  # variables a job or call may set
MAX_ENV_BYTES = 64 << 10


def check_env(env: object) -> None:
    """Variables for one job or call: names a shell would take, str values, bounded."""
    if not isinstance(env, dict):
        raise JobError(f"env must be a mapping of name -> str, got {type(env).__name__}")
    if len(env) > MAX_ENV:
        raise JobError(f"{len(env)} environment variables; at most {MAX_ENV}")
    total = 0
    for name, value in env.items():
        if not (isinstance(name, str) and name and len(name) <= 256 and (name[0].isalpha() or name[0] == "_")
                and name.isascii() and name.replace("_", "a").isalnum()):
            raise JobError(f"invalid environment variable name {str(name)[:80]!r}")
        if not isinstance(value, str) or "\x00" in value:
            raise JobError(f"environment variable {name} must be a str without NUL")
        total += len(name) + len(value.encode("utf-8", "surrogatepass"))
    if total > MAX_ENV_BYTES:
        raise JobError(f"environment variables total {total} bytes; at most {MAX_ENV_BYTES}")


def check_relative_path(name: object) -> str:
    """A path inside the workspace: relative, no '..', no empty or dot parts, no NUL."""
    if not isinstance(name, str) or not name or len(name) > 1024 or "\x00" in name:
        raise JobError(f"invalid file name {name!r}")
    parts = name.split("/")
    if name.startswith("/") or len(parts) > 16 or any(p in ("", ".", "..") or len(p) > 255 for p in parts):
        raise JobError(f"file name {name!r} must be a relative path without '..' or empty parts")
    return name


def encode_file(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(name: str, data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise JobError(f"file {name!r} is not valid base64") from None


def _check_budget(name: str, value: object, maximum: float, unit: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JobError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise JobError(f"{name} must be a positive finite number, got {value!r}")
    if value > maximum:
        raise JobError(f"{name}={value}{unit} exceeds this fleet's maximum of {maximum}{unit}")


class EgressDestination(BaseModel):
    """One destination a job asked its pool's egress proxy for."""

    destination: str  # HOST:PORT as the job asked for it
    allowed: bool
    reason: str | None = None  # why it was denied, or why an allowed connect failed
    connections: int = 0
    bytes_out: int = 0  # job -> destination
    bytes_in: int = 0  # destination -> job


class EgressReport(BaseModel):
    """A job's network egress, as its pool's egress proxy saw it."""

    destinations: list[EgressDestination] = Field(default_factory=list)
    connections: int = 0  # allowed connections made
    bytes: int = 0  # both directions, all destinations
    limit_hit: str | None = None  # the job's connection or byte cap, once reached


class Output(TypedDict):
    """One output of a cell (executor/lean/cell.py), in the order the code produced them:
    its result (the last expression's value) or a display (display(), a figure). `data`
    maps MIME types to str: text types as text, binary ones (image/png, image/jpeg)
    base64, JSON ones (application/json, application/vnd.warmfleet.table+json) as JSON.
    A plain dict (`r.outputs[0]["data"]["text/html"]`), checked when a Result is built."""

    type: Literal["result", "display"]
    data: dict[str, str]


class Result(BaseModel):
    """What a client gets back for every job, whatever happened to it."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    status: Status
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    duration_s: float = 0.0
    cpu_s: float = 0.0
    max_rss_bytes: int = 0
    queue_wait_s: float = 0.0
    executor: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    files: dict[str, str] = Field(default_factory=dict)  # out/ files: relative path -> base64
    files_truncated: bool = False  # some out/ files were left out (count or size bound)
    egress: EgressReport | None = None  # None: the pool allows no egress (or the proxy did not answer)
    # What a notebook would show (python only): outputs, the result's text/plain, and an
    # uncaught exception's name, message and traceback (the code's frames only).
    outputs: list[Output] = Field(default_factory=list)
    text: str | None = None
    error_name: str | None = None
    error_value: str | None = None
    traceback: str | None = None
    outputs_truncated: bool = False  # some outputs were dropped (a marker says where)
    execution_count: int | None = None  # session calls: the call's number in its session, from 1

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def file(self, name: str) -> bytes:
        """The content of an output file the job wrote under out/ (name relative to out/)."""
        return base64.b64decode(self.files[name])

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> "Result":
        return cls.model_validate_json(raw)


def explain(exc: ValidationError) -> str:
    """One line per problem, without pydantic's URLs: the reason stored in a `rejected` result."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "job"
        parts.append(f"{where}: {err.get('msg')}")
    return "; ".join(parts)
