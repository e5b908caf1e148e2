"""The executor's messages: what travels supervisor -> slot runner -> job child and back,
supervisor -> session zygote -> session process and back, the statuses a job or call can
end with, and the records of a streaming job's output stream.

Standard library only, and only modules the lean runner imports anyway: the runner and the
job child import this module, and inside gVisor every page of their address space is paid
again on each fork (docs/design/field-notes.md). So the records below are small hand-rolled
classes rather than `dataclasses` (whose import pulls in `inspect`: +15 modules, +1.5 MB).

Framing: 4-byte big-endian length + one JSON object. Every frame is bounded by
MAX_FRAME, on both ends: `encode_frame` refuses to write a larger one and `frame_size`
refuses to read one.
"""

from __future__ import annotations

import enum
import json
import os
import struct

HEADER = struct.Struct(">I")
MAX_FRAME = 64 << 20
TAG = "t"  # the key naming a frame's message type


class Status(str, enum.Enum):
    """How a job ended. The runner reports `.value` strings; the schema's Result parses them."""

    OK = "ok"  # exit 0
    ERROR = "error"  # non-zero exit, uncaught exception, killed by a signal it raised itself
    TIMEOUT = "timeout"  # wall clock
    CPU_LIMIT = "cpu_limit"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    REJECTED = "rejected"  # invalid job; `error` says why
    FAILED = "failed"  # the fleet could not run it after retries; `error` says why


class FrameError(ValueError):
    """A frame that breaks the protocol: too large, not JSON, or not a known message."""


# -- records ---------------------------------------------------------------------------
_REQUIRED = object()


class Message:
    """A plain record. Fields are the class annotations, in order; a class attribute of
    the same name is that field's default (use None for "empty" and let the user
    decide; a mutable default is never shared: dicts and lists are copied)."""

    tag = ""
    _fields: tuple[str, ...] = ()
    _field_set: frozenset[str] = frozenset()
    _defaults: dict = {}

    def __init_subclass__(cls, protocol: str = "runner") -> None:
        """`protocol`: the channel the message travels on (runner, session, zygote); a tag
        names one message per protocol. A subclass adds fields to its base's."""
        fields = list(cls._fields)
        defaults = dict(cls._defaults)
        for name in cls.__dict__.get("__annotations__", {}):
            if name.startswith("_") or name == "tag":
                continue
            if name not in fields:
                fields.append(name)
            if name in cls.__dict__:
                defaults[name] = cls.__dict__[name]
        cls._fields, cls._defaults, cls._field_set = tuple(fields), defaults, frozenset(fields)
        if "tag" in cls.__dict__:
            _BY_TAG[(protocol, cls.tag)] = cls

    def __init__(self, **values: object) -> None:
        # Hot: a few of these per job on each side of the runner's channel. Defaults first,
        # then the values given; the counts tell whether any field is missing or unknown.
        d = self.__dict__
        for name, default in self._defaults.items():
            d[name] = default.copy() if default.__class__ in _MUTABLE else default
        d.update(values)
        if len(d) != len(self._fields) or not self._field_set.issuperset(values):
            unknown = values.keys() - self._field_set
            if unknown:
                raise TypeError(f"{type(self).__name__} has no field {', '.join(sorted(unknown))}")
            raise TypeError(f"{type(self).__name__} needs {', '.join(n for n in self._fields if n not in d)}")

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return cls._fields

    def as_dict(self) -> dict:
        return dict(self.__dict__)  # exactly the fields (see __init__); order does not matter

    @classmethod
    def from_dict(cls, data: dict) -> "Message":
        """Build from a decoded dict, ignoring nothing: an unknown or missing field is a FrameError."""
        try:
            return cls(**data)
        except TypeError as exc:
            raise FrameError(str(exc)) from None

    def mistyped(self) -> list[str]:
        """Fields whose value is not of its declared type (bool is no number): for a message
        that untrusted code can write, such as a session's reply."""
        kinds = _KINDS_OF.get(type(self))
        if kinds is None:  # once per class: its fields' declared types, as class tuples
            notes: dict = {}
            for klass in reversed(type(self).__mro__):
                notes.update(klass.__dict__.get("__annotations__", {}))
            kinds = _KINDS_OF[type(self)] = {
                name: tuple(_KINDS[kind.strip()] for kind in str(notes[name]).split("|")) for name in self._fields
            }
        return [name for name, types in kinds.items() if not any(_is(self.__dict__[name], t) for t in types)]

    def replace(self, **changes: object) -> "Message":
        return type(self)(**{**self.as_dict(), **changes})

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.as_dict() == other.as_dict()  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.as_dict().items())})"


_BY_TAG: dict[tuple[str, str], type[Message]] = {}
_MUTABLE = (dict, list)
_KINDS = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "dict": (dict,), "list": (list,),
          "None": (type(None),)}
_KINDS_OF: dict[type, dict[str, tuple]] = {}


def _is(value: object, types: tuple) -> bool:
    return isinstance(value, types) and (types is _KINDS["bool"] or not isinstance(value, bool))


class Confinement(Message):
    """What a job child and a session process are locked down with (executor/lean/lockdown.py):
    uid, workspace, namespace and rlimits, fixed when the runner or session starts."""

    uid: int
    gid: int
    workspace: str
    drop_privileges: bool
    isolate_network: bool  # a network namespace of its own (only lo)
    processes: int
    file_size_bytes: int
    open_files: int
    max_memory_mb: int
    max_files: int
    max_output_files_bytes: int
    # The job environment (executor/lean/jobenv.py): directories appended to sys.path (the
    # env's site-packages).
    job_path: list = []

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes):  # type: ignore[no-untyped-def]
        return cls.from_dict(json.loads(raw))


class RunnerConfig(Confinement):
    """What a slot's runner and its job children need, fixed when the runner starts. It
    travels on the runner's command line: never put a secret in it."""

    slot: int
    output_bytes: int
    max_cpu_time: float
    kill_grace_s: float
    # Modules the runner imports before forking, and warm-up code steps each spare runs
    # while it waits.
    preload: list = []
    warmup: list = []
    # The pool's egress proxy socket: each child listens for its job's relay (None: no egress).
    egress_socket: str | None = None


class RunJob(Message):
    """supervisor -> runner: run this job. The fields of the schema's Job that the
    executor acts on (a new one is added here and in the code that uses it; the slot
    copies them from the Job by name). The runner hands all but `code` on to the child."""

    tag = "job"
    code: str
    language: str
    timeout: float
    cpu_time: float
    memory_mb: int
    files: dict = {}  # relative path -> base64 content
    stream: bool = False  # send Chunks while the job runs
    env: dict = {}  # variables added to the job's environment (schema.check_env)
    # Set by the executor, not a Job field: {"job_id", "token"} the job's egress relay
    # presents to the pool's egress proxy (None: the pool allows no egress).
    egress: dict | None = None

    def child_header(self) -> bytes:
        """The first line the job child reads (the code follows it)."""
        header = self.as_dict()
        del header["code"]
        return json.dumps(header, separators=(",", ":")).encode()

    @classmethod
    def from_child_payload(cls, payload: bytes) -> "RunJob":
        header, _, code = payload.partition(b"\n")
        return cls(**json.loads(header), code=code.decode("utf-8", "surrogatepass"))  # type: ignore[return-value]

    def child_payload(self) -> bytes:
        return self.child_header() + b"\n" + self.code.encode("utf-8", "surrogatepass")


class RunOutcome(Message):
    """runner -> supervisor: how the job ended. The slot adds what only it knows (job id,
    executor, queue wait) to make the schema's Result of it."""

    tag = "result"
    status: str  # a Status value
    exit_code: int | None = None
    error: str | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_s: float = 0.0
    cpu_s: float = 0.0
    max_rss_bytes: int = 0
    files: dict = {}  # out/ files: relative path -> base64
    files_truncated: bool = False
    # The cell's outputs (executor/lean/cell.py): see `valid_output` and schema.Result.
    outputs: list = []
    text: str | None = None
    error_name: str | None = None
    error_value: str | None = None
    traceback: str | None = None
    outputs_truncated: bool = False


# -- a cell's outputs: {"type": "result" | "display", "data": {MIME type: str}} ----------
OUTPUT_TYPES = ("result", "display")


def valid_output(output: object) -> bool:
    """The shape of one output; it crosses the job child's status pipe and a session's
    channel, both writable by the code itself, so the receiving side checks each one."""
    if not (isinstance(output, dict) and output.keys() == {"type", "data"} and output["type"] in OUTPUT_TYPES):
        return False
    data = output["data"]
    return isinstance(data, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in data.items())


class Chunk(Message):
    """runner -> supervisor: output a streaming job wrote, on "stdout" or "stderr"."""

    tag = "chunk"
    stream: str
    data: str


class Hello(Message):
    tag = "hello"
    pid: int


class Ready(Message):
    """runner -> supervisor: a spare child is forked and waiting for code."""

    tag = "ready"


class Broken(Message):
    """runner -> supervisor: the runner cannot fork a working child; it exits next."""

    tag = "broken"
    error: str


class Next(Message):
    """supervisor -> runner: the result is stored; fork the next spare."""

    tag = "next"


class Stop(Message):
    tag = "stop"


# -- a session process's channel (protocol "session") and the session zygote's ("zygote") --
class SessionConfig(Confinement):
    """What a session process is locked down with and serves calls under; the supervisor
    sends it through the zygote's control socket, never on a command line."""

    preloaded: bool = False  # forked from a zygote holding the pool's preload: budgets count above it
    egress_env: dict | None = None  # HTTP(S)_PROXY/ALL_PROXY of the relay the supervisor runs in its namespace


class Call(RunJob, protocol="session"):
    """supervisor -> session process: run this call (a job's fields) in the session's
    globals. `seq` numbers the calls: the reply echoes it."""

    tag = "call"
    seq: int = 0
    context: str = ""  # whose globals it runs in ("" the session's own); language "bash": a bash process


class CallOutcome(RunOutcome, protocol="session"):
    """session process -> supervisor: how a call ended, by the call's own account (its
    stdout and stderr travel on pipes: the supervisor adds them; a budget the supervisor
    stopped it for overrules its status, executor/lean/verdict.py)."""

    tag = "result"
    seq: int = 0
    cpu_total_s: float = 0.0  # the session process's CPU so far: the next call's counts from there
    execution_count: int | None = None  # the call's number in its session (a session-only Result field)

    def outcome(self) -> RunOutcome:
        return RunOutcome(**{name: self.__dict__[name] for name in RunOutcome.fields()})  # type: ignore[return-value]


class SessionReady(Message, protocol="session"):
    """session process -> supervisor: locked down, serving calls."""

    tag = "ready"
    pid: int


class SessionBroken(Broken, protocol="session"):
    tag = "broken"


class ZygoteInit(Message, protocol="zygote"):
    """host -> zygote, first and once: the pool's job environment to load."""

    tag = "init"
    job_path: list = []
    preload: list = []
    warmup: list = []


class ZygoteReady(Message, protocol="zygote"):
    tag = "ready"
    pid: int


class ZygoteBroken(Broken, protocol="zygote"):
    tag = "broken"


SPAWN_MODES = ("serve", "reset")  # a session process, or one that only cleans its uid and workspace up


class Spawn(Message, protocol="zygote"):
    """host -> zygote: fork a session process (a SessionConfig as `cfg`) on the 3 descriptors
    the packet carries (SCM_RIGHTS): its channel end, its stdout and its stderr pipes."""

    tag = "spawn"
    id: int
    mode: str
    cfg: dict


class Spawned(Message, protocol="zygote"):
    tag = "spawned"
    id: int
    pid: int


class SpawnFailed(Message, protocol="zygote"):
    tag = "failed"
    id: int | None
    error: str


class Exited(Message, protocol="zygote"):
    """zygote -> host: a session it forked was reaped; its wait status."""

    tag = "exited"
    pid: int
    status: int


def to_packet(msg: Message) -> bytes:
    """One zygote message: a whole SOCK_SEQPACKET packet, no length header."""
    return json.dumps(to_frame(msg), separators=(",", ":")).encode()


def from_packet(data: bytes) -> Message:
    return from_frame(decode_body(data), "zygote")


# -- frames ------------------------------------------------------------------------------
def to_frame(msg: Message) -> dict:
    return {TAG: msg.tag, **msg.as_dict()}


def from_frame(frame: dict, protocol: str = "runner") -> Message:
    if not isinstance(frame, dict):
        raise FrameError(f"a frame must be a JSON object, got {type(frame).__name__}")
    fields = dict(frame)
    tag = fields.pop(TAG, None)
    cls = _BY_TAG.get((protocol, tag)) if isinstance(tag, str) else None
    if cls is None:
        raise FrameError(f"unknown message {frame.get(TAG)!r}")
    return cls.from_dict(fields)


def encode_frame(frame: dict) -> bytes:
    body = json.dumps(frame, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise FrameError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return HEADER.pack(len(body)) + body


def frame_size(header: bytes) -> int:
    """The body length announced by a frame header, refused above MAX_FRAME."""
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise FrameError(f"frame of {size} bytes exceeds {MAX_FRAME}")
    return size


def decode_body(body: bytes) -> dict:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise FrameError(f"frame is not JSON: {exc}") from None


def encode(msg: Message) -> bytes:
    return encode_frame(to_frame(msg))


def write_frame(fd: int, frame: dict) -> None:
    data = memoryview(encode_frame(frame))
    while data:
        data = data[os.write(fd, data) :]


def read_frame(fd: int) -> dict:
    """One frame from a blocking descriptor. EOFError when the peer closed the channel."""
    return decode_body(_read_exact(fd, frame_size(_read_exact(fd, HEADER.size))))


def send(fd: int, msg: Message) -> None:
    write_frame(fd, to_frame(msg))


def receive(fd: int, protocol: str = "runner") -> Message:
    return from_frame(read_frame(fd), protocol)


def _read_exact(fd: int, n: int) -> bytes:
    chunks, need = [], n
    while need:
        chunk = os.read(fd, min(need, 1 << 20))
        if not chunk:
            raise EOFError("peer closed the channel")
        chunks.append(chunk)
        need -= len(chunk)
    return b"".join(chunks)


# -- a streaming job's output stream (keys.output): one record per Redis stream entry ----
STREAM_FIELD, DATA_FIELD = "s", "d"
END_FIELD, RESTART_FIELD = "end", "restart"


def chunk_record(chunk: Chunk) -> dict:
    return {STREAM_FIELD: chunk.stream, DATA_FIELD: chunk.data}


END_RECORD = {END_FIELD: "1"}  # the job's output is complete; its result is stored
RESTART_RECORD = {RESTART_FIELD: "1"}  # the job runs again elsewhere: drop what came before


def read_record(fields: dict) -> tuple[str, str] | None:
    """(stream, data) of one output-stream entry; ("restart", "") for a restart marker;
    None for the end marker."""
    if END_FIELD in fields:
        return None
    if RESTART_FIELD in fields:
        return (RESTART_FIELD, "")
    return (fields.get(STREAM_FIELD, "stdout"), fields.get(DATA_FIELD, ""))
