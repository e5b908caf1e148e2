"""`POST /run_code` (one stateless job) and `POST /run_jupyter` (cells run one after
another in one fresh session), on the tenant's default pool.

Whatever goes wrong on our side is SandboxFusion's `SandboxError` with a message, as its
server answers (its client then raises with that message, after its own retries); only
an unreadable request (422), a missing key (401) and a quota (429) are HTTP errors."""

from __future__ import annotations

import asyncio
import time
import uuid

from fastapi import APIRouter, Depends, Request

from dispatcher import InvalidJob, SessionEnded, WaitTimeout
from warmfleet.http.auth import require_tenant
from warmfleet.http.fleet import fleet_of
from warmfleet.http.openapi import error_responses
from warmfleet.http.sandboxfusion import translate
from warmfleet.http.sandboxfusion.models import (
    CellRunResult,
    CommandRunResult,
    CommandRunStatus,
    RunCodeRequest,
    RunCodeResponse,
    RunJupyterRequest,
    RunJupyterResponse,
    RunStatus,
)
from warmfleet.http.tenants import Tenant
from warmfleet.contract.messages import Status

router = APIRouter(tags=["SandboxFusion"])
LEASE_SLACK_S = 5.0  # a run's max_running lease outlives its wait by this much
# Whatever the code does, and whatever the fleet cannot run, is a 200 in SandboxFusion's
# own statuses; these are the request's own failures.
_ERRORS = error_responses(
    e401="missing or unknown API key",
    e422="the body is not SandboxFusion's request shape",
    e429="over a quota (rate, max_running); `message` names it",
)


@router.post("/run_code", response_model=RunCodeResponse, summary="Run code once (SandboxFusion)", responses=_ERRORS)
async def run_code(body: RunCodeRequest, request: Request, tenant: Tenant = Depends(require_tenant)) -> RunCodeResponse:
    fleet = fleet_of(request)
    client = fleet.client(fleet.pool_for(tenant, None))
    try:
        plan = translate.plan_run(body.language, body.code, body.stdin, body.files, body.fetch_files,
                                  body.run_timeout, body.memory_limit_MB, await client.limits())
    except translate.Unsupported as exc:
        return translate.sandbox_error(str(exc))
    wait_s = plan.options["timeout"] + fleet.settings.http_open_timeout_s
    run_id = uuid.uuid4().hex
    quotas = request.app.state.quotas
    await quotas.reserve_run(tenant, run_id, wait_s + LEASE_SLACK_S)
    try:
        job_id = await client.submit(plan.code, **plan.options)
        result = await client.wait(job_id, timeout=wait_s)
    except InvalidJob as exc:
        return translate.sandbox_error(f"rejected: {exc}")
    except WaitTimeout:
        return translate.sandbox_error(f"no result within {wait_s:g} s: the fleet is busy (the job may still run)")
    finally:
        await quotas.release_run(tenant, run_id)
    return translate.run_code_response(result, plan.fetch)


@router.post("/run_jupyter", response_model=RunJupyterResponse, summary="Run notebook cells in one fresh session",
             responses=_ERRORS)
async def run_jupyter(body: RunJupyterRequest, request: Request,
                      tenant: Tenant = Depends(require_tenant)) -> RunJupyterResponse:
    fleet = fleet_of(request)
    client = fleet.client(fleet.pool_for(tenant, None))
    limits = await client.limits()
    try:
        if body.kernel not in translate.JUPYTER_KERNELS:
            raise translate.Unsupported(f"kernel {body.kernel!r} is not supported here; this service runs python3")
        if not body.total_timeout > 0 or body.cell_timeout < 0:
            raise translate.Unsupported("total_timeout must be above 0 and cell_timeout at least 0 (0: no own limit)")
        files = translate.input_files(body.files)
        fetch = translate.fetch_names(body.fetch_files)
    except translate.Unsupported as exc:
        return RunJupyterResponse(status=RunStatus.SandboxError, message=str(exc))
    memory_mb = None if body.memory_limit_MB <= 0 else body.memory_limit_MB
    total_s = min(body.total_timeout, fleet.settings.http_max_timeout_s)  # the longest a sandbox may live here
    run_id = uuid.uuid4().hex
    quotas = request.app.state.quotas
    await quotas.reserve_run(tenant, run_id, total_s + fleet.settings.http_open_timeout_s + LEASE_SLACK_S)
    started = time.monotonic()
    answer = RunJupyterResponse(status=RunStatus.Success, message="")
    timed_out = False
    try:
        session = await client.session(idle_timeout=total_s + LEASE_SLACK_S, max_lifetime=total_s + LEASE_SLACK_S,
                                       open_timeout=fleet.settings.http_open_timeout_s)
    except WaitTimeout:
        await quotas.release_run(tenant, run_id)
        return RunJupyterResponse(status=RunStatus.SandboxError,
                                  message="no sandbox was free to open a session; try again later")
    deadline = asyncio.get_running_loop().time() + total_s
    try:
        for index, cell in enumerate(body.cells):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                timed_out = True
                answer.message = f"total_timeout of {total_s:g} s reached before cell {index}"
                break
            if not cell.strip():  # a kernel runs an empty cell as nothing; a job refuses empty code
                answer.cells.append(CellRunResult(stdout="", stderr="", display=[], error=[]))
                continue
            budget = min(body.cell_timeout or left, left, limits.max_timeout)
            result = await session.run(cell, files=files if index == 0 else None, timeout=budget,
                                       cpu_time=min(budget, limits.max_cpu_time), memory_mb=memory_mb)
            answer.executor_pod_name = result.executor or answer.executor_pod_name
            answer.cells.append(translate.cell_result(result))
            if result.status not in (Status.OK, Status.ERROR):  # a budget ended the cell, and the session with it
                timed_out = result.status in translate.TIME_LIMITS
                answer.message = f"cell {index}: {translate.explain(result)}"
                answer.status = RunStatus.Failed
                break
        else:
            if fetch:
                answer.files = translate.fetched(await session.run(translate.fetch_call(fetch)), fetch)
    except InvalidJob as exc:
        answer.status, answer.message = RunStatus.SandboxError, f"rejected: {exc}"
    except SessionEnded as exc:
        answer.status, answer.message = RunStatus.Failed, str(exc)
    finally:
        await session.close(wait=0)
        await quotas.release_run(tenant, run_id)
    if timed_out:
        answer.status = RunStatus.Failed
    answer.driver = CommandRunResult(
        status=CommandRunStatus.TimeLimitExceeded if timed_out else CommandRunStatus.Finished,
        execution_time=time.monotonic() - started, return_code=None if timed_out else 0, stdout="", stderr="",
    )
    return answer
