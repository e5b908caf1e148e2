"""The supervisor's side of a pool's egress: sign each job for the proxy, and collect
what the job did through it once it ended (egress/server.py, control endpoint)."""

from __future__ import annotations

import asyncio
import logging

from pydantic import ValidationError

from warmfleet.settings import ExecutorSettings
from warmfleet.contract import egress_identity as identity
from warmfleet.contract.schema import EgressReport

log = logging.getLogger("warmfleet.egress")
COLLECT_TIMEOUT_S = 2.0


def job_pass(settings: ExecutorSettings, job_id: str) -> dict | None:
    """What the job child's relay sends the proxy; None when the pool has no egress."""
    if not settings.egress_enabled:
        return None
    assert settings.egress_secret is not None
    return {"job_id": job_id, "token": identity.job_token(settings.egress_secret, settings.pool, job_id)}


async def collect(settings: ExecutorSettings, job_id: str) -> EgressReport | None:
    if not settings.egress_enabled:
        return None
    assert settings.egress_control is not None and settings.egress_secret is not None
    token = identity.control_token(settings.egress_secret, settings.pool, job_id)
    kind, _, where = settings.egress_control.partition(":")
    try:
        async with asyncio.timeout(COLLECT_TIMEOUT_S):
            if kind == "unix":
                reader, writer = await asyncio.open_unix_connection(where)
            else:
                host, _, port = where.rpartition(":")
                reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
            try:
                writer.write(f"USAGE {job_id} {token}\n".encode())
                line = await reader.readline()
            finally:
                writer.close()
        return EgressReport.model_validate_json(line)
    except (OSError, TimeoutError, ValueError, ValidationError) as exc:
        log.warning("could not collect the job's egress", extra={"job_id": job_id, "error": str(exc)})
        return None
