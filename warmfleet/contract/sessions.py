"""The session records that travel through Redis between clients (dispatcher/session.py)
and executors (executor/sessions/): an open, a call, the session's record, and the entry
fields of the streams they travel on. Defined once here; both sides read and write them
only through these classes. (What travels inside a pod, supervisor -> session zygote ->
session process, is in warmfleet.contract.messages: the lean processes import only that.)

A call carries a validated Job's fields (its job id is the call id) and gets the same
Result; a field added to what a job carries is added here too, and copied by name.
"""

from __future__ import annotations

import enum
import time

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from warmfleet.contract.schema import JOB_ID_RE, Job

# Stream entry fields: keys.session_opens entries carry OPEN_FIELD; keys.session_calls
# entries carry CALL_FIELD (a call) or CLOSE_FIELD (close the session after the calls
# before it); keys.session_wake entries only wake a pod's read of its call streams.
# entries may also carry STOP_FIELD (the id of a call its client asked to stop: read
# beside the calls, so it reaches a running one).
OPEN_FIELD, CALL_FIELD, CLOSE_FIELD, WAKE_FIELD, STOP_FIELD = "open", "call", "close", "w", "stop"
CLOSE_ENTRY = {CLOSE_FIELD: "1"}
WAKE_ENTRY = {WAKE_FIELD: "1"}


def _name_or_none(value: object) -> object:
    return value if isinstance(value, str) else None


class SessionOpen(BaseModel):
    """client -> the pool's pods (keys.session_opens): open a session under this id and
    answer, as a Result under keys.result(session_id), on `reply_to`'s channel."""

    model_config = ConfigDict(extra="ignore")

    session_id: str = Field(pattern=JOB_ID_RE.pattern)
    idle_timeout: float = 300.0
    max_lifetime: float = 3600.0
    reply_to: str | None = None
    submitted_at: float = Field(default_factory=time.time)

    _reply_to_name = field_validator("reply_to", mode="before")(_name_or_none)

    def entry(self) -> dict[str, str]:
        return {OPEN_FIELD: self.model_dump_json()}

    @classmethod
    def from_entry(cls, fields: dict) -> "SessionOpen":
        """Raises ValueError (a pydantic ValidationError) for a malformed open."""
        return cls.model_validate_json(fields.get(OPEN_FIELD, ""))


class SessionCall(BaseModel):
    """client -> the session's pod (keys.session_calls): run this in the session. Its
    Result is stored under keys.result(call_id) and published on `reply_to`'s channel
    (None: the session's)."""

    model_config = ConfigDict(extra="ignore")

    call_id: str = Field(pattern=JOB_ID_RE.pattern)
    code: str
    timeout: float
    cpu_time: float
    memory_mb: int
    files: dict[str, str] = Field(default_factory=dict)  # relative path -> base64 content
    env: dict[str, str] = Field(default_factory=dict)  # variables for this call only (schema.check_env)
    reply_to: str | None = None
    submitted_at: float = Field(default_factory=time.time)
    language: str = "python"  # or "bash": a bash process in the workspace
    stream: bool = False  # publish its output as it is written (keys.output), as a streaming job's
    context: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]{0,64}$")  # its globals ("" the session's own)

    @field_validator("files", "env", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return {} if value is None else value

    @classmethod
    def from_job(cls, job: Job, context: str = "") -> "SessionCall":
        """A validated job, as a session call (in `context`'s globals): its fields copied by name."""
        return cls(call_id=job.job_id, context=context,
                   **{name: getattr(job, name) for name in cls.model_fields if name not in ("call_id", "context")})

    def entry(self) -> dict[str, str]:
        return {CALL_FIELD: self.model_dump_json()}

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_entry(cls, fields: dict) -> "SessionCall":
        """Raises ValueError (a pydantic ValidationError) for a malformed call."""
        return cls.model_validate_json(fields[CALL_FIELD])

    @staticmethod
    def salvage(fields: dict) -> tuple[str | None, str | None]:
        """(call id, reply_to) of a malformed call, where they can be read, to answer it."""
        try:
            partial = SalvagedCall.model_validate_json(fields.get(CALL_FIELD, ""))
        except ValidationError:
            return None, None
        named = isinstance(partial.call_id, str) and JOB_ID_RE.match(partial.call_id)
        return (partial.call_id if named else None), partial.reply_to  # type: ignore[return-value]


class SalvagedCall(BaseModel):
    """What can be read of a malformed call: only an id to answer to, and where."""

    model_config = ConfigDict(extra="ignore")

    call_id: object = None
    reply_to: str | None = None

    _reply_to_name = field_validator("reply_to", mode="before")(_name_or_none)


class SessionState(str, enum.Enum):
    OPENING = "opening"  # a pod claimed the open and is starting the process
    OPEN = "open"
    ENDED = "ended"


class SessionRecord(BaseModel):
    """keys.session: one session as its pod records it. While open its TTL is the pod's
    lease. Three Lua scripts read it by field name (state, pod): warmfleet/contract/lua/
    session_open_answer.lua, session_lease_renew.lua and session_call_submit.lua;
    tests/warmfleet/test_sessions.py checks that what they read is defined here."""

    model_config = ConfigDict(extra="ignore")

    session_id: str = ""
    pod: str = ""
    state: SessionState
    reason: str = ""  # why it ended: a label (LOST_REASONS in executor/sessions/state.py), ":" and details
    lost: bool = False  # the client is told SessionLost, not SessionEnded
    opened_at: float = 0.0
    idle_timeout: float = 0.0
    max_lifetime: float = 0.0
    calls: int = 0
    index: int = 0

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> "SessionRecord":
        return cls.model_validate_json(raw)
