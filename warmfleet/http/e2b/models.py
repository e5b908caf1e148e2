"""E2B's wire shapes, as the `e2b` 2.x SDK sends and parses them (its generated models:
e2b/api/client/models/{new_sandbox_v2,sandbox,sandbox_detail,listed_sandbox}.py and
e2b_code_interpreter's /execute request). Fields E2B has and a warmfleet sandbox cannot
honour (autoPause, network, mcp, volumeMounts...) are accepted and ignored, as the docs
say; what we use is bounded, so a huge body is refused here, not in the fleet."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

ENVD_VERSION = "0.4.0"  # what we implement of envd: multipart uploads, default user; no octet-stream
MAX_ENV_VARS = 256
MAX_ENV_BYTES = 64 * 1024
MAX_METADATA = 64

EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")]
ShortText = Annotated[str, StringConstraints(max_length=1024)]


def check_env(env: dict[str, str] | None) -> dict[str, str]:
    if not env:
        return {}
    if len(env) > MAX_ENV_VARS:
        raise ValueError(f"{len(env)} environment variables; at most {MAX_ENV_VARS}")
    size = sum(len(k) + len(v.encode("utf-8", "surrogatepass")) for k, v in env.items())
    if size > MAX_ENV_BYTES:
        raise ValueError(f"environment variables total {size} bytes; at most {MAX_ENV_BYTES}")
    if any("\x00" in v for v in env.values()):
        raise ValueError("an environment variable's value contains a NUL byte")
    return env


class NewSandbox(BaseModel):
    """POST /sandboxes and POST /v2/sandboxes."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    template_id: Annotated[str, StringConstraints(max_length=128)] = Field(alias="templateID")
    timeout: int | None = Field(default=None, ge=0)
    env_vars: dict[EnvName, str] | None = Field(default=None, alias="envVars")
    metadata: dict[Annotated[str, StringConstraints(max_length=256)], ShortText] | None = None

    _env = field_validator("env_vars")(classmethod(lambda cls, v: check_env(v)))

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value and len(value) > MAX_METADATA:
            raise ValueError(f"{len(value)} metadata entries; at most {MAX_METADATA}")
        return value


class TimeoutRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    timeout: int = Field(ge=0)


class ConnectRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    timeout: int | None = Field(default=None, ge=0)


class ExecuteRequest(BaseModel):
    """POST /execute of the code-interpreter server (port 49999 behind E2B's proxy)."""

    model_config = ConfigDict(extra="ignore")

    code: Annotated[str, StringConstraints(max_length=1 << 20)]
    context_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    language: Annotated[str, StringConstraints(max_length=32)] | None = None
    env_vars: dict[EnvName, str] | None = None

    _env = field_validator("env_vars")(classmethod(lambda cls, v: check_env(v)))


class CreateContext(BaseModel):
    model_config = ConfigDict(extra="ignore")
    language: Annotated[str, StringConstraints(max_length=32)] | None = None
    cwd: Annotated[str, StringConstraints(max_length=1024)] | None = None


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")
