"""How a job proves to its pool's egress proxy which job it is (contract: the executor
signs, the proxy checks; stdlib only).

A job's connections carry its id and a token, an HMAC of the pool and job id under the
secret the proxy and the pool's supervisors share (from their settings files, which
jobs cannot read). A job knows only its own token, so it cannot spend another job's
byte and connection budget nor hide its traffic under another job's id. The supervisor
asks the proxy for a job's usage with a second token a job never sees.
"""

from __future__ import annotations

import hashlib
import hmac


MAX_PREAMBLE = 200  # "<job_id> <token>\n"


def job_token(secret: str, pool: str, job_id: str) -> str:
    return hmac.new(secret.encode(), f"job\0{pool}\0{job_id}".encode(), hashlib.sha256).hexdigest()[:40]


def control_token(secret: str, pool: str, job_id: str) -> str:
    return hmac.new(secret.encode(), f"control\0{pool}\0{job_id}".encode(), hashlib.sha256).hexdigest()[:40]


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
