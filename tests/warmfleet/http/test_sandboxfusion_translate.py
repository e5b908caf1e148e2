"""SandboxFusion requests as jobs and Results as its answers (no fleet): the status
mapping, the budgets, and the stdin/fetch_files wrappers run by a real interpreter and
a real bash in a scratch directory, as a job child would run them in its workspace."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

from warmfleet.http.sandboxfusion import translate
from warmfleet.http.sandboxfusion.models import CommandRunStatus, RunStatus
from warmfleet.contract.messages import Status
from warmfleet.contract.schema import FleetLimits, Result

LIMITS = FleetLimits()


def _plan(language="python", code="print(1)", stdin=None, files=None, fetch=None, run_timeout=10, memory=-1):
    return translate.plan_run(language, code, stdin, files or {}, fetch or [], run_timeout, memory, LIMITS)


def _result(status: Status, exit_code: int | None = None, **fields) -> Result:
    return Result(job_id="j", status=status, exit_code=exit_code, duration_s=0.25, executor="pod-1/slot-0", **fields)


def test_a_plain_request_runs_its_code_as_is_with_its_budgets():
    plan = _plan(code="print(2)", run_timeout=3, memory=512)
    assert plan.code == "print(2)"
    assert plan.options == {"language": "python", "files": {}, "timeout": 3.0, "cpu_time": 3.0, "memory_mb": 512}


def test_budgets_are_capped_at_the_fleet_maxima_and_default_memory_is_the_fleets():
    plan = _plan(run_timeout=10_000)
    assert (plan.options["timeout"], plan.options["cpu_time"]) == (LIMITS.max_timeout, LIMITS.max_cpu_time)
    assert plan.options["memory_mb"] is None


@pytest.mark.parametrize("language", ["cpp", "nodejs", "R", "", "python3"])
def test_another_language_is_unsupported_naming_what_runs_here(language):
    with pytest.raises(translate.Unsupported, match=r"not supported here; this service runs python, bash"):
        _plan(language=language)


@pytest.mark.parametrize("bad", ["../etc/passwd", "/etc/passwd", "a/../../b", ""])
def test_fetch_paths_outside_the_workspace_are_refused(bad):
    with pytest.raises(translate.Unsupported, match="fetch_files"):
        _plan(fetch=[bad])


def test_bad_base64_and_a_non_positive_timeout_are_refused_and_none_files_skipped():
    with pytest.raises(translate.Unsupported, match="not valid base64"):
        _plan(files={"a.txt": "%%%"})
    with pytest.raises(translate.Unsupported, match="run_timeout"):
        _plan(run_timeout=0)
    assert _plan(files={"skip": None, "a": base64.b64encode(b"x").decode()}).options["files"] == {"a": b"x"}


@pytest.mark.parametrize(
    ("status", "exit_code", "run_status", "return_code", "answer"),
    [
        (Status.OK, 0, CommandRunStatus.Finished, 0, RunStatus.Success),
        (Status.ERROR, 3, CommandRunStatus.Finished, 3, RunStatus.Failed),
        (Status.ERROR, -9, CommandRunStatus.Finished, -9, RunStatus.Failed),
        (Status.TIMEOUT, -14, CommandRunStatus.TimeLimitExceeded, None, RunStatus.Failed),
        (Status.CPU_LIMIT, -24, CommandRunStatus.TimeLimitExceeded, None, RunStatus.Failed),
        (Status.MEMORY_LIMIT, 1, CommandRunStatus.Finished, 1, RunStatus.Failed),
        (Status.MEMORY_LIMIT, None, CommandRunStatus.Finished, 1, RunStatus.Failed),
        (Status.OUTPUT_LIMIT, -9, CommandRunStatus.Finished, -9, RunStatus.Failed),
        (Status.REJECTED, None, CommandRunStatus.Error, None, RunStatus.SandboxError),
        (Status.FAILED, None, CommandRunStatus.Error, None, RunStatus.SandboxError),
    ],
)
def test_each_warmfleet_status_maps_to_sandboxfusions(status, exit_code, run_status, return_code, answer):
    result = _result(status, exit_code, stdout="out", stderr="err", error=None if status is Status.OK else "why")
    response = translate.run_code_response(result, [])
    assert (response.run_result.status, response.run_result.return_code, response.status) == (
        run_status, return_code, answer)
    assert response.run_result.execution_time == 0.25
    assert response.executor_pod_name == "pod-1/slot-0"
    if answer is RunStatus.Success:
        assert response.message == ""
    else:
        assert response.message == f"{status.value}: why"
    if run_status is CommandRunStatus.Error:
        assert response.run_result.stderr == "why"  # the reason, where SandboxFusion puts a sandbox's error
    else:
        assert (response.run_result.stdout, response.run_result.stderr) == ("out", "err")


def _run_wrapped(tmp_path, plan) -> subprocess.CompletedProcess:
    for name, data in plan.options["files"].items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    argv = [sys.executable, "-c", plan.code] if plan.options["language"] == "python" else ["bash", "-c", plan.code]
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def _outputs(tmp_path) -> dict[str, str]:
    out = tmp_path / "out"
    return {str(p.relative_to(out)): base64.b64encode(p.read_bytes()).decode() for p in out.rglob("*") if p.is_file()}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("language", ["python", "bash"])
def test_the_wrapper_feeds_stdin_fetches_files_and_keeps_the_exit_code(tmp_path, language):
    code = {
        "python": "import os, sys\nname = input()\nrest = sys.stdin.read()\nos.chdir('/')\n"
                  "print('hi', name, rest.split())\nsys.exit(3)\n",
        "bash": "read name\nrest=$(cat)\ncd /\necho hi $name $rest\nexit 3\n",
    }[language]
    plan = _plan(language=language, code=code, stdin="ann\nb c\n", fetch=["made.txt", "sub/kept.bin", "missing"],
                 files={"made.txt": base64.b64encode(b"made").decode(), "sub/kept.bin": base64.b64encode(b"\0\1").decode()})
    assert plan.code != code and plan.options["files"][translate.CODE_FILE[language]] == code.encode()
    done = _run_wrapped(tmp_path, plan)
    assert done.returncode == 3, done.stderr
    expected = "hi ann ['b', 'c']\n" if language == "python" else "hi ann b c\n"
    assert done.stdout == expected
    result = _result(Status.ERROR, 3, files=_outputs(tmp_path))
    assert translate.fetched(result, plan.fetch) == {
        "made.txt": base64.b64encode(b"made").decode(), "sub/kept.bin": base64.b64encode(b"\0\1").decode()}


@pytest.mark.timeout(60)
def test_a_wrapped_python_error_shows_the_codes_own_line(tmp_path):
    plan = _plan(code="x = 1\n\n1 / 0\n", stdin="unused\n")
    done = _run_wrapped(tmp_path, plan)
    assert done.returncode == 1
    assert "main.py\", line 3" in done.stderr and "1 / 0" in done.stderr
    assert done.stderr.rstrip().endswith("ZeroDivisionError: division by zero")


def test_a_cell_reports_figures_and_the_exception_a_kernel_would():
    png = base64.b64encode(b"\x89PNG").decode()
    ok = translate.cell_result(_result(Status.OK, 0, stdout="1\n", files={"figure-2.png": png, "figure-1.png": png,
                                                                           "other.txt": png}))
    assert (ok.stdout, ok.error) == ("1\n", [])
    assert [d["image/png"] for d in ok.display] == [png, png]
    err = translate.cell_result(_result(Status.ERROR, 1, stderr="Traceback (most recent call last):\n"
                                        "  File \"<call 3>\", line 1, in <module>\nAssertionError\n"))
    assert err.error[0]["ename"] == "AssertionError" and err.error[0]["evalue"] == ""
    timeout = translate.cell_result(_result(Status.TIMEOUT, -14, error="wall-clock limit of 1.0 s exceeded"))
    assert timeout.error == [{"ename": "timeout", "evalue": "wall-clock limit of 1.0 s exceeded", "traceback": []}]


def test_the_fetch_call_copies_only_regular_files(tmp_path):
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "d").mkdir()
    done = subprocess.run([sys.executable, "-c", translate.fetch_call(["a.txt", "d", "nope"])], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path / "out" / translate.HELPER_DIR)) == ["0"]
