"""SandboxFusion's own client package (`sandbox-fusion`, unmodified: requests and aiohttp)
against the service's /run_code and /run_jupyter, on the real fleet. The key travels in
the endpoint URL (`http://any:KEY@host:port`), as HTTP Basic."""

from __future__ import annotations

import base64

import pytest
import requests
import sandbox_fusion as sf
from support.http_service import serve

from warmfleet.contract.schema import Result


@pytest.fixture(scope="module")
def service(fleet):
    with serve(fleet.client_url) as s:
        s.add_tenant("fusion")
        yield s


@pytest.fixture(scope="module")
def endpoint(service) -> str:
    return f"http://any:{service.keys['fusion']}@{service.host_port}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.timeout(60)
def test_python_with_stdin_files_and_fetched_files(endpoint):
    code = "import sys\nname = input()\nopen('out.txt', 'w').write(open('in.txt').read().upper() + name)\nprint('hi', name)"
    resp = sf.run_code(sf.RunCodeRequest(code=code, language="python", stdin="ann\n", files={"in.txt": _b64(b"abc")},
                                         fetch_files=["out.txt", "never-written.txt"]), endpoint=endpoint, max_attempts=1)
    assert resp.status == sf.RunStatus.Success, resp
    assert (resp.run_result.status, resp.run_result.return_code) == (sf.CommandRunStatus.Finished, 0)
    assert resp.run_result.stdout == "hi ann\n"
    assert resp.run_result.execution_time > 0
    assert resp.files == {"out.txt": _b64(b"ABCann")}
    assert sf.summary_run_code_result(resp, sf.SummaryMapping()) == sf.RunStatus.Success


@pytest.mark.timeout(60)
def test_bash_runs_and_a_non_zero_exit_is_failed(endpoint):
    ok = sf.run_code(sf.RunCodeRequest(code="echo $((6 * 7)); echo err >&2", language="bash"), endpoint=endpoint,
                     max_attempts=1)
    assert ok.status == sf.RunStatus.Success
    assert (ok.run_result.stdout, ok.run_result.stderr) == ("42\n", "err\n")
    failed = sf.run_code(sf.RunCodeRequest(code="exit 3", language="bash"), endpoint=endpoint, max_attempts=1)
    assert (failed.status, failed.run_result.return_code) == (sf.RunStatus.Failed, 3)
    mapping = sf.SummaryMapping(RunFailed="RE", RunTimeout="TLE")
    assert sf.summary_run_code_result(failed, mapping) == "RE"


@pytest.mark.timeout(60)
def test_a_run_over_its_time_is_time_limit_exceeded(endpoint):
    resp = sf.run_code(sf.RunCodeRequest(code="while True: pass", language="python", run_timeout=1), endpoint=endpoint,
                       max_attempts=1)
    assert resp.status == sf.RunStatus.Failed
    assert (resp.run_result.status, resp.run_result.return_code) == (sf.CommandRunStatus.TimeLimitExceeded, None)
    assert sf.summary_run_code_result(resp, sf.SummaryMapping(RunTimeout="TLE")) == "TLE"


@pytest.mark.timeout(60)
def test_an_unsupported_language_is_sandboxfusions_own_error_and_the_service_goes_on(endpoint, service):
    with pytest.raises(Exception, match=r"Sandbox responded with error: language 'cpp' is not supported here; "
                                        r"this service runs python, bash"):
        sf.run_code(sf.RunCodeRequest(code="int main() {}", language="cpp"), endpoint=endpoint, max_attempts=1)
    raw = requests.post(endpoint + "/run_code", json={"code": "x", "language": "brainfuck"}, timeout=30)
    assert raw.status_code == 200
    assert raw.json()["status"] == "SandboxError" and "brainfuck" in raw.json()["message"]
    after = sf.run_code(sf.RunCodeRequest(code="print(1)", language="python"), endpoint=endpoint, max_attempts=1)
    assert after.run_result.stdout == "1\n"


@pytest.mark.timeout(60)
async def test_the_async_client_passes_its_key_in_the_url_too(endpoint):
    resp = await sf.run_code_async(sf.RunCodeRequest(code="print(sum(range(10)))", language="python"),
                                   endpoint=endpoint, max_attempts=1)
    assert resp.run_result.stdout == "45\n"


@pytest.mark.timeout(60)
def test_without_a_key_or_with_a_wrong_one_it_is_a_json_401(service):
    for url in (f"http://{service.host_port}", f"http://any:wf_not-a-key@{service.host_port}"):
        raw = requests.post(url + "/run_code", json={"code": "print(1)", "language": "python"}, timeout=30)
        assert raw.status_code == 401
        assert raw.json()["code"] == 401 and "key" in raw.json()["message"]
    missing = requests.post(f"http://any:{service.keys['fusion']}@{service.host_port}/run_code", json={"code": 1},
                            timeout=30)
    assert missing.status_code == 422 and missing.json()["code"] == 422


@pytest.mark.timeout(90)
def test_jupyter_cells_share_one_session_and_report_errors_as_a_kernel_does(endpoint):
    cells = ['a = "hello"', "a", "print(a)", "import sys; sys.stderr.write('warn\\n')", "assert False", "", "print(a)"]
    resp = sf.run_jupyter(sf.RunJupyterRequest(cells=cells, files={"data.txt": _b64(b"d")}), endpoint=endpoint,
                          max_attempts=1)
    assert resp.status == sf.RunStatus.Success, resp.message
    assert resp.driver.status == sf.CommandRunStatus.Finished
    assert [c.stdout for c in resp.cells] == ["", "", "hello\n", "", "", "", "hello\n"]
    assert resp.cells[3].stderr == "warn\n"
    assert resp.cells[4].error[0]["ename"] == "AssertionError"
    assert resp.cells[2].error == [] and resp.cells[5].error == []
    if "outputs" in Result.model_fields:  # values shown as a kernel's execute_result (the cells feature)
        assert resp.cells[1].display[0]["text/plain"] == "'hello'"


@pytest.mark.timeout(90)
def test_a_jupyter_cell_over_its_time_ends_the_run_as_failed(endpoint):
    resp = sf.run_jupyter(sf.RunJupyterRequest(cells=["x = 1", "while True: pass", "print(x)"], cell_timeout=1),
                          endpoint=endpoint, max_attempts=1)
    assert resp.status == sf.RunStatus.Failed
    assert resp.driver.status == sf.CommandRunStatus.TimeLimitExceeded
    assert len(resp.cells) == 2 and resp.cells[1].error[0]["ename"] in ("timeout", "cpu_limit")


@pytest.mark.timeout(60)
def test_bad_input_is_a_sandbox_error_naming_the_problem(endpoint):
    def answer(**body) -> dict:
        resp = requests.post(endpoint + "/run_code", json={"code": "print(1)", "language": "python", **body},
                             timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()

    cases = {
        "relative path": {"files": {"../escape.txt": _b64(b"x")}},
        "fetch_files": {"fetch_files": ["/etc/passwd"]},
        "not valid base64": {"files": {"a.txt": "not base64!"}},
        "at least 32": {"memory_limit_MB": 8},
        "run_timeout": {"run_timeout": -1},
        "NUL": {"code": "print(1)\x00"},
    }
    for words, body in cases.items():
        out = answer(**body)
        assert out["status"] == "SandboxError" and words in out["message"], (words, out)
    jupyter = requests.post(endpoint + "/run_jupyter", json={"cells": ["1"], "kernel": "ir"}, timeout=30).json()
    assert jupyter["status"] == "SandboxError" and "python3" in jupyter["message"]
