"""SandboxFusion requests as warmfleet jobs and session calls, and Results as
SandboxFusion answers. No I/O here: routes.py does the fleet's part.

A plain request (no stdin, nothing to fetch) runs its code as is: the fast path, and
exactly what the code would do as a job. stdin and fetch_files need a few lines around
the code, because a job has neither (its stdin is empty; it returns only what it wrote
under out/): the code and the stdin travel as input files under `.sandbox_fusion/`, and
a short wrapper feeds the one to the other and copies the fetched files into out/.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from typing import Any, NamedTuple

from warmfleet.contract.messages import Status
from warmfleet.contract.schema import LANGUAGES, FleetLimits, JobError, Result, check_relative_path
from warmfleet.http.sandboxfusion.models import (
    CellRunResult,
    CommandRunResult,
    CommandRunStatus,
    RunCodeResponse,
    RunStatus,
)

HELPER_DIR = ".sandbox_fusion"  # in the workspace: the code and stdin when wrapped; under out/: fetched files
CODE_FILE = {"python": f"{HELPER_DIR}/main.py", "bash": f"{HELPER_DIR}/main.sh"}
STDIN_FILE = f"{HELPER_DIR}/stdin"
JUPYTER_KERNELS = ("python3", "python")
TIME_LIMITS = (Status.TIMEOUT, Status.CPU_LIMIT)
NOT_RUN = (Status.REJECTED, Status.FAILED)
FIGURE_RE = re.compile(r"^figure-(\d+)\.png$")
# The last line of a Python traceback: `Name: value`, or just `Name`.
EXCEPTION_LINE_RE = re.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$")

# Runs the request's code (an input file) with its stdin (another) and copies the
# fetched files into out/ whatever way the code ends; `here` is taken first because the
# code may chdir. Reads files, not literals: the code keeps its own line numbers and its
# traceback shows its lines.
PYTHON_WRAPPER = """\
def _sandbox_fusion(fetch, has_stdin):
    import builtins, io, os, sys
    here = os.getcwd()
    if has_stdin:
        with open(os.path.join(here, {stdin!r}), "rb") as f:
            sys.stdin = io.TextIOWrapper(io.BytesIO(f.read()), encoding="utf-8")
    path = os.path.join(here, {code!r})
    with open(path, encoding="utf-8") as f:
        code = compile(f.read(), path, "exec")
    try:
        exec(code, {{"__name__": "__main__", "__builtins__": builtins}})
    finally:
        for n, name in enumerate(fetch):
            src = os.path.join(here, name)
            if os.path.isfile(src):
                os.makedirs(os.path.join(here, "out", {helper!r}), exist_ok=True)
                with open(src, "rb") as f, open(os.path.join(here, "out", {helper!r}, str(n)), "wb") as g:
                    g.write(f.read())
_sandbox_fusion({fetch!r}, {has_stdin!r})
"""


class Unsupported(ValueError):
    """A request this service cannot run; answered as SandboxError with this message."""


class JobPlan(NamedTuple):
    """What to submit: the code and the client's job options (warmfleet.AsyncClient.submit)."""

    code: str
    options: dict[str, Any]
    fetch: list[str]


def budgets(run_timeout: float, memory_limit_mb: int, limits: FleetLimits) -> dict[str, Any]:
    """SandboxFusion's one time limit is both our wall clock and our CPU time (a busy
    loop ends as TimeLimitExceeded either way), capped at the fleet's maxima; -1 (or
    anything <= 0) memory means the fleet's default."""
    if isinstance(run_timeout, bool) or not run_timeout > 0:
        raise Unsupported(f"run_timeout must be a positive number of seconds, got {run_timeout!r}")
    return {
        "timeout": min(float(run_timeout), limits.max_timeout),
        "cpu_time": min(float(run_timeout), limits.max_cpu_time),
        "memory_mb": None if memory_limit_mb <= 0 else memory_limit_mb,
    }


def input_files(files: dict[str, str | None]) -> dict[str, bytes]:
    """Decoded input files; a None content is skipped, as SandboxFusion does."""
    out: dict[str, bytes] = {}
    for name, content in files.items():
        if content is None:
            continue
        try:
            out[name] = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise Unsupported(f"file {name!r} is not valid base64") from None
    return out


def fetch_names(names: list[str]) -> list[str]:
    try:
        return [check_relative_path(name) for name in names]
    except JobError as exc:
        raise Unsupported(f"fetch_files: {exc}") from None


def plan_run(language: str, code: str, stdin: str | None, files: dict[str, str | None], fetch_files: list[str],
             run_timeout: float, memory_limit_mb: int, limits: FleetLimits) -> JobPlan:
    """The job for a /run_code request, or Unsupported."""
    if language not in LANGUAGES:
        raise Unsupported(f"language {language!r} is not supported here; this service runs {', '.join(LANGUAGES)}")
    fetch = fetch_names(fetch_files)
    options = {"language": language, "files": input_files(files), **budgets(run_timeout, memory_limit_mb, limits)}
    has_stdin = bool(stdin)
    if not has_stdin and not fetch:
        return JobPlan(code, options, fetch)
    options["files"][CODE_FILE[language]] = code.encode("utf-8", "surrogatepass")
    if has_stdin:
        options["files"][STDIN_FILE] = stdin.encode("utf-8", "surrogatepass")  # type: ignore[union-attr]
    if language == "python":
        wrapper = PYTHON_WRAPPER.format(stdin=STDIN_FILE, code=CODE_FILE["python"], helper=HELPER_DIR, fetch=fetch,
                                        has_stdin=has_stdin)
    else:
        wrapper = bash_wrapper(fetch, has_stdin)
    return JobPlan(wrapper, options, fetch)


def bash_wrapper(fetch: list[str], has_stdin: bool) -> str:
    """Run the script in a bash of its own (so its `exit` or `cd` does not skip the
    copies), then copy the fetched files and exit with the script's code."""
    run = f"bash {CODE_FILE['bash']}" + (f" < {STDIN_FILE}" if has_stdin else "")
    if not fetch:
        return "exec " + run + "\n"
    lines = [run, "__sandbox_fusion_rc=$?", f"mkdir -p out/{HELPER_DIR}"]
    for n, name in enumerate(fetch):
        lines.append(f"if [ -f {shlex.quote(name)} ]; then cp -- {shlex.quote(name)} out/{HELPER_DIR}/{n}; fi")
    lines.append("exit $__sandbox_fusion_rc")
    return "\n".join(lines) + "\n"


def fetched(result: Result, fetch: list[str]) -> dict[str, str]:
    """The fetched files the job found, by the names the request gave (base64)."""
    out = {}
    for n, name in enumerate(fetch):
        content = result.files.get(f"{HELPER_DIR}/{n}")
        if content is not None:
            out[name] = content
    return out


def command_result(result: Result) -> CommandRunResult:
    """A warmfleet Result as SandboxFusion's run_result: the time limits (wall clock and
    CPU) are TimeLimitExceeded with no return code; a job the fleet refused or could not
    run is Error; everything else finished with a return code, never 0 unless ok."""
    common = {"execution_time": result.duration_s, "stdout": result.stdout, "stderr": result.stderr}
    if result.status in NOT_RUN:
        return CommandRunResult(status=CommandRunStatus.Error, **{**common, "stderr": result.error or result.stderr})
    if result.status in TIME_LIMITS:
        return CommandRunResult(status=CommandRunStatus.TimeLimitExceeded, **common)
    code = result.exit_code if result.exit_code is not None else 0
    if result.status is not Status.OK and code == 0:
        code = 1  # memory or output limit on a process that was stopped without an exit code of its own
    return CommandRunResult(status=CommandRunStatus.Finished, return_code=code, **common)


def explain(result: Result) -> str:
    """What SandboxFusion's `message` says for an answer other than Success (it leaves it
    empty for Failed; ours names warmfleet's status and reason, which its client ignores)."""
    if result.status is Status.OK:
        return ""
    return f"{result.status.value}: {result.error}" if result.error else result.status.value


def run_code_response(result: Result, fetch: list[str]) -> RunCodeResponse:
    run = command_result(result)
    if run.status is CommandRunStatus.Error:
        status = RunStatus.SandboxError
    elif run.status is CommandRunStatus.Finished and run.return_code == 0:
        status = RunStatus.Success
    else:
        status = RunStatus.Failed
    return RunCodeResponse(status=status, message=explain(result), run_result=run,
                           executor_pod_name=result.executor or None, files=fetched(result, fetch))


def sandbox_error(message: str) -> RunCodeResponse:
    return RunCodeResponse(status=RunStatus.SandboxError, message=message)


# -- /run_jupyter: one cell per session call ---------------------------------------------
def fetch_call(fetch: list[str]) -> str:
    """A last session call that copies the fetched files into out/ (a session call
    returns what its call wrote there)."""
    return PYTHON_FETCH.format(fetch=fetch, helper=HELPER_DIR)


PYTHON_FETCH = """\
def _sandbox_fusion_fetch(fetch):
    import os
    for n, name in enumerate(fetch):
        if os.path.isfile(name):
            os.makedirs(os.path.join("out", {helper!r}), exist_ok=True)
            with open(name, "rb") as f, open(os.path.join("out", {helper!r}, str(n)), "wb") as g:
                g.write(f.read())
_sandbox_fusion_fetch({fetch!r})
"""


def cell_result(result: Result) -> CellRunResult:
    """A session call as a Jupyter cell: its displays (and its value, as execute_result
    does) as MIME bundles, its error as `{"ename", "evalue", "traceback"}`."""
    return CellRunResult(stdout=result.stdout, stderr=result.stderr, display=displays(result), error=errors(result))


def displays(result: Result) -> list[dict[str, Any]]:
    outputs = getattr(result, "outputs", None)
    if outputs:  # the cells feature: results and displays in the order produced
        return [dict(_field(output, "data")) for output in outputs]
    figures = sorted((int(m.group(1)), name) for name in result.files if (m := FIGURE_RE.match(name)))
    return [{"image/png": result.files[name], "text/plain": "<Figure>"} for _, name in figures]


def errors(result: Result) -> list[dict[str, Any]]:
    if result.status is Status.OK:
        return []
    if result.status in (Status.TIMEOUT, Status.CPU_LIMIT, Status.OUTPUT_LIMIT):
        # The fleet interrupted the cell for a budget: name the budget, not the interrupt.
        return [{"ename": result.status.value, "evalue": result.error or "", "traceback": []}]
    name = getattr(result, "error_name", None)
    if name:
        traceback = getattr(result, "traceback", None) or []
        if isinstance(traceback, str):
            traceback = traceback.splitlines()
        return [{"ename": name, "evalue": getattr(result, "error_value", None) or "", "traceback": list(traceback)}]
    if result.status is Status.ERROR:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        if lines and (m := EXCEPTION_LINE_RE.match(lines[-1])):
            return [{"ename": m.group(1), "evalue": m.group(2) or "", "traceback": lines}]
    # A budget or the fleet ended the cell: say so the way a kernel names an error.
    return [{"ename": result.status.value, "evalue": result.error or "", "traceback": []}]


def _field(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)
