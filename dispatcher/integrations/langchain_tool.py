"""A LangChain tool (``langchain-core``) that runs Python on the fleet, sync and async.

    from dispatcher.integrations.langchain_tool import WarmfleetPythonTool
    tool = WarmfleetPythonTool(redis_url="redis://fleet:6379/0")
    agent = create_agent(model, tools=[tool])          # or llm.bind_tools([tool])

The model sees a compact text (status, exit code, stdout, stderr); with a ToolCall input
the ToolMessage also carries the whole Result as its ``artifact``. With
``session=Client(url).session()`` every call runs in that one session: the model's
variables and files persist across calls.
Needs ``pip install 'warmfleet[langchain]'``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from dispatcher import AsyncClient, Client, InvalidJob, SessionEnded
from dispatcher.aio import AsyncSession
from dispatcher.integrations.common import TOOL_DESCRIPTION, TOOL_NAME, as_text
from warmfleet.contract.schema import DEFAULT_LIMITS, Result, Status


class RunPythonInput(BaseModel):
    code: str = Field(description="Python 3 source to run; print() what you need to see")
    timeout: float = Field(default=DEFAULT_LIMITS.timeout, gt=0, description="wall-clock seconds")


class WarmfleetPythonTool(BaseTool):
    name: str = TOOL_NAME
    description: str = TOOL_DESCRIPTION
    args_schema: type[BaseModel] = RunPythonInput
    response_format: str = "content_and_artifact"

    redis_url: str | None = None
    pool: str | None = None  # None: the pool setting, else "default"
    memory_mb: int = DEFAULT_LIMITS.memory_mb
    max_timeout: float = 60.0
    # A session (Client(...).session() or AsyncClient(...).session()): calls run in it, so
    # the model's variables and files persist across tool calls. None: a fresh job each.
    session: Any = None

    # A client per call: Client is not thread-safe and AsyncClient is bound to one event
    # loop, and agent frameworks call tools from threads and loops of their choosing.
    # The cost is one connection and a subscribe (~1 ms), small next to a model call.
    def _limits(self, timeout: float) -> dict[str, Any]:
        timeout = min(float(timeout), self.max_timeout)
        return {"timeout": timeout, "cpu_time": timeout, "memory_mb": self.memory_mb}

    def _run(self, code: str, timeout: float = DEFAULT_LIMITS.timeout, **_: Any) -> tuple[str, dict]:
        try:
            if self.session is not None:
                result = self.session.run(code, **self._limits(timeout))
            else:
                with Client(self.redis_url, pool=self.pool) as client:
                    result = client.run(code, **self._limits(timeout))
        except InvalidJob as exc:
            result = Result(job_id="", status=Status.REJECTED, error=str(exc))
        except SessionEnded as exc:
            result = Result(job_id="", status=Status.FAILED, error=f"{exc}: its variables and files are gone")
        return as_text(result), result.model_dump(mode="json")

    async def _arun(self, code: str, timeout: float = DEFAULT_LIMITS.timeout, **_: Any) -> tuple[str, dict]:
        try:
            if isinstance(self.session, AsyncSession):
                result = await self.session.run(code, **self._limits(timeout))
            elif self.session is not None:  # a sync Session: off the event loop
                result = await asyncio.to_thread(self.session.run, code, **self._limits(timeout))
            else:
                async with AsyncClient(self.redis_url, pool=self.pool) as client:
                    result = await client.run(code, **self._limits(timeout))
        except InvalidJob as exc:
            result = Result(job_id="", status=Status.REJECTED, error=str(exc))
        except SessionEnded as exc:
            result = Result(job_id="", status=Status.FAILED, error=f"{exc}: its variables and files are gone")
        return as_text(result), result.model_dump(mode="json")
