"""What the sync and async clients share: URL resolution, building and validating
jobs, the Lua for idempotent submission, decoding replies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import NamedTuple

from dispatcher.errors import InvalidJob, NoFleetConfigured
from warmfleet.settings import ClientSettings, env_name
from warmfleet.contract import messages
from warmfleet.contract import discovery
from warmfleet.contract.schema import FleetLimits, Job, JobError, Result, check_env, check_files, check_request, encode_file
from warmfleet.contract import lua

IDEMPOTENT_SUBMIT = lua.script("job_submit_idempotent")  # warmfleet/contract/lua/job_submit_idempotent.lua

READD_LOST = lua.script("job_readd_lost")  # warmfleet/contract/lua/job_readd_lost.lua
READD_BATCH = 100  # jobs per READD_LOST call


def resolve_url(redis_url: str | None, settings: ClientSettings) -> str:
    url = redis_url or settings.redis_url or discovery.read_url(settings.state_dir)
    if not url:
        raise NoFleetConfigured(
            f"no Redis URL: pass redis_url=..., set {env_name('redis_url')}, or start a local fleet with `warmfleet up`"
        )
    return url


def new_client_id() -> str:
    return uuid.uuid4().hex


def connection_name(client_id: str) -> str:
    """CLIENT SETNAME for every connection of one client: operators can count them."""
    return f"warmfleet-client-{client_id}"


def build_job(
    code: object,
    *,
    limits: FleetLimits,
    reply_to: str,
    language: object = None,
    timeout: object = None,
    cpu_time: object = None,
    memory_mb: object = None,
    files: object = None,
    env: object = None,
    stream: bool = False,
    trace: dict[str, str] | None = None,
) -> Job:
    """Validate against the fleet's published limits and build the job, or raise InvalidJob.
    A budget left at None is the fleet's published default (FleetLimits), language python."""
    language = Job.model_fields["language"].default if language is None else language
    timeout = limits.timeout if timeout is None else timeout
    cpu_time = limits.cpu_time if cpu_time is None else cpu_time
    memory_mb = limits.memory_mb if memory_mb is None else memory_mb
    raw_files = {}
    if files is not None:
        if not isinstance(files, dict):
            raise InvalidJob(f"files must be a dict of path -> bytes or str, got {type(files).__name__}")
        raw_files = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
    try:
        check_request(code, language=language, timeout=timeout, cpu_time=cpu_time, memory_mb=memory_mb, limits=limits)
        check_files(raw_files, limits)
        check_env({} if env is None else env)
    except JobError as exc:
        raise InvalidJob(str(exc)) from None
    return Job(
        job_id=uuid.uuid4().hex,
        code=code,  # type: ignore[arg-type]  # checked above
        language=language,  # type: ignore[arg-type]
        timeout=float(timeout),  # type: ignore[arg-type]
        cpu_time=float(cpu_time),  # type: ignore[arg-type]
        memory_mb=memory_mb,  # type: ignore[arg-type]
        reply_to=reply_to,
        files={name: encode_file(data) for name, data in raw_files.items()},
        stream=stream,
        env=dict(env or {}),  # type: ignore[call-overload]  # checked above
        trace=trace or {},
    )


def check_idempotency_key(key: object) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= 200:
        raise InvalidJob("idempotency_key must be a non-empty str of at most 200 characters")
    return key


def parse_limits(raw: str | None) -> FleetLimits:
    return FleetLimits.model_validate_json(raw) if raw else FleetLimits()


class Chunk(NamedTuple):
    """Output a streaming job wrote: `stream` is "stdout" or "stderr"; "restart" means
    the job is being run again after its executor died (discard what came before)."""

    stream: str
    data: str


def parse_chunk(fields: dict) -> Chunk | None:
    """None marks the end of the job's output."""
    record = messages.read_record(fields)
    return None if record is None else Chunk(*record)


def chunks_in(resp: list | None) -> Iterator[tuple[str, Chunk | None]]:
    """(entry id, chunk) for every entry of an XREAD reply on an output stream."""
    for _, entries in resp or []:
        for entry_id, fields in entries:
            yield entry_id, parse_chunk(fields)


def parse_result(raw: str | bytes) -> Result:
    return Result.from_json(raw)

