"""The /v1 request and answer bodies. A job or call answers warmfleet's own `Result`
(warmfleet.schema), field for field, as the Python client returns it."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from warmfleet.http.errors import ApiError
from warmfleet.contract.schema import LANGUAGES, Result

Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Files = Annotated[dict[str, str], Field(description="relative path -> base64 content, placed in the workspace")]


class Budgets(BaseModel):
    """Limits of one run; left out: the fleet's published defaults (its maxima cap them)."""

    model_config = ConfigDict(extra="forbid")

    timeout: Seconds | None = Field(None, description="wall clock, seconds")
    cpu_time: Seconds | None = Field(None, description="CPU time of all the run's processes, seconds")
    memory_mb: int | None = Field(None, ge=32, description="address space, MiB")
    files: Files = Field(default_factory=dict)

    def options(self) -> dict:
        """The client's job options (warmfleet.AsyncClient.submit / AsyncSession.run)."""
        return {"timeout": self.timeout, "cpu_time": self.cpu_time, "memory_mb": self.memory_mb,
                "files": decode_files(self.files)}


class JobRequest(Budgets):
    code: str = Field(..., examples=["print(6 * 7)"])
    language: Literal[LANGUAGES] = "python"  # type: ignore[valid-type]
    pool: str | None = Field(None, description="one of the key's pools; left out: its first")
    stream: bool = Field(False, description="answer NDJSON lines as the job prints (also: Accept: application/x-ndjson)")
    idempotency_key: str | None = Field(None, min_length=1, max_length=200,
                                        description="a retry with the same key answers the first job's result")


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pool: str | None = Field(None, description="one of the key's pools; left out: its first")
    idle_timeout: Seconds = Field(300.0, description="ended after this long without a call")
    max_lifetime: Seconds = Field(3600.0, description="ended this long after it opened, whatever it does")


class SessionInfo(BaseModel):
    id: str
    pool: str
    idle_timeout: float
    max_lifetime: float
    created_at: float = Field(description="unix seconds")


class CallRequest(Budgets):
    code: str = Field(..., examples=["x = 41\nprint(x + 1)"])


class OutputLine(BaseModel):
    """One NDJSON line of a streamed job. `stdout`/`stderr`: `data` as printed;
    `restart`: the job is being run again (its executor died), drop what came before;
    `keepalive`: nothing new yet; `result`: the last line, with the Result; `error`: the
    last line when the stream could not finish (`code`, `message`, as an error body)."""

    type: Literal["stdout", "stderr", "restart", "keepalive", "result", "error"]
    data: str | None = None
    result: Result | None = None
    code: int | None = None
    message: str | None = None


def ndjson_schema() -> dict:
    """OutputLine's JSON schema, its references pointing into the OpenAPI components
    (Result is there already, as the answer of the non-streamed form)."""
    schema = OutputLine.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


def decode_files(files: dict[str, str]) -> dict[str, bytes]:
    out = {}
    for name, content in files.items():
        try:
            out[name] = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(422, f"file {name!r} is not valid base64") from None
    return out
