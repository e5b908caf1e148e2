"""E2B's own SDK (`e2b-code-interpreter` 2.x on `e2b` 2.x, unmodified) against the
service, on a real fleet (a data-science pool: matplotlib). It is pointed at the service
by the three environment variables a user sets: E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY."""

from __future__ import annotations

import base64
import os
import threading
import time

import httpx
import pytest
from support.http_service import serve

DATA_SCIENCE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "envs", "data-science.txt")


@pytest.fixture(scope="module")
def ds_fleet():
    from support.sessions_fleet import start_fleet

    f = start_fleet(sessions=6, requirements=os.path.abspath(DATA_SCIENCE), preload=["numpy", "matplotlib.pyplot"])
    yield f
    f.stop()


@pytest.fixture(scope="module")
def service(ds_fleet):
    with serve(ds_fleet.client_url) as s:
        s.add_tenant("alice")
        s.add_tenant("bob")
        yield s


@pytest.fixture(scope="module")
def e2b_env(service):
    """What `warmfleet up --http` prints for a user to export."""
    saved = {k: os.environ.get(k) for k in ("E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY")}
    os.environ.update(E2B_API_URL=service.url, E2B_SANDBOX_URL=service.url, E2B_API_KEY=service.keys["alice"])
    yield service
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.mark.timeout(120)
def test_the_e2b_sdk_runs_code_keeps_state_and_streams(e2b_env):
    from e2b_code_interpreter import Sandbox

    sbx = Sandbox.create()
    try:
        first = sbx.run_code("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\n1 + 1")
        assert first.error is None, first.error
        assert first.text == "2"  # the last expression: the main result
        pngs = [r for r in first.results if r.png]
        assert len(pngs) == 1 and not pngs[0].is_main_result and base64.b64decode(pngs[0].png).startswith(b"\x89PNG")
        html = sbx.run_code("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})\ndf").results[-1]
        assert html.is_main_result and "<table" in html.html and html.text
        assert sbx.run_code("x = 41").error is None
        seen: list[tuple[float, str]] = []
        started = time.monotonic()
        ex = sbx.run_code("import time\nprint(x + 1, flush=True)\ntime.sleep(1.5)\nprint('done')",
                          on_stdout=lambda m: seen.append((time.monotonic() - started, m.line)))
        assert ex.logs.stdout == ["42\n", "done\n"]
        assert [line for _, line in seen] == ["42\n", "done\n"]
        assert seen[0][0] < seen[1][0] - 1.0  # streamed as printed, not at the end
        err = sbx.run_code("1/0")
        assert err.error is not None and err.error.name == "ZeroDivisionError"
        assert err.error.value == "division by zero" and "ZeroDivisionError" in err.error.traceback
        assert sbx.run_code("print(x)").logs.stdout == ["41\n"]  # the error lost no state
        code = "import os\nprint(os.environ.get('ONLY_HERE'))"
        assert sbx.run_code(code, envs={"ONLY_HERE": "yes"}).logs.stdout == ["yes\n"]
        assert sbx.run_code(code).logs.stdout == ["None\n"]  # envs of run_code last one cell
        assert ex.execution_count is not None
    finally:
        sbx.kill()
    assert not sbx.is_running()


@pytest.mark.timeout(120)
def test_a_second_context_has_its_own_globals_and_shares_files(e2b_env):
    from e2b_code_interpreter import Sandbox

    with Sandbox.create() as sbx:
        sbx.run_code("x = 'default'\nopen('shared.txt', 'w').write('hello')")
        ctx = sbx.create_code_context()
        r = sbx.run_code("print('x' in globals(), open('shared.txt').read())", context=ctx)
        assert r.logs.stdout == ["False hello\n"], r
        sbx.run_code("x = 'second'", context=ctx)
        assert sbx.run_code("print(x)").logs.stdout == ["default\n"]
        assert sbx.run_code("print(x)", context=ctx).logs.stdout == ["second\n"]
        assert [c.id for c in sbx.list_code_contexts()] == [ctx.id]
        sbx.restart_code_context(ctx)
        assert sbx.run_code("print('x' in globals())", context=ctx).logs.stdout == ["False\n"]
        bash = sbx.run_code("echo $((6 * 7)); cat shared.txt", language="bash")
        assert bash.logs.stdout == ["42\nhello"] or "".join(bash.logs.stdout) == "42\nhello", bash
        sbx.remove_code_context(ctx)
        assert sbx.list_code_contexts() == []
        with pytest.raises(Exception, match="not available"):
            sbx.run_code("console.log(1)", language="javascript")


@pytest.mark.timeout(120)
def test_files_write_and_read_inside_the_workspace_only(e2b_env):
    from e2b.exceptions import InvalidArgumentException, NotFoundException
    from e2b_code_interpreter import Sandbox

    with Sandbox.create() as sbx:
        sbx.files.write("/home/user/data/notes.txt", "hello from the SDK")
        assert sbx.files.read("/home/user/data/notes.txt") == "hello from the SDK"
        assert sbx.run_code("print(open('data/notes.txt').read())").logs.stdout == ["hello from the SDK\n"]
        sbx.files.write("bin.dat", b"\x00\x01\xff")
        assert bytes(sbx.files.read("bin.dat", format="bytes")) == b"\x00\x01\xff"
        sbx.run_code("import os\nos.symlink('/etc/passwd', 'link')\nos.makedirs('d', exist_ok=True)\n"
                     "os.symlink('/etc', 'd/etc')")
        for bad in ("/etc/passwd", "../x", "/home/user/../../etc/passwd"):
            with pytest.raises(InvalidArgumentException):
                sbx.files.read(bad)
        for linked in ("link", "d/etc/passwd"):
            with pytest.raises(Exception) as info:
                sbx.files.read(linked)
            assert "root:" not in str(info.value)
        with pytest.raises(NotFoundException):
            sbx.files.read("never-written.txt")


@pytest.mark.timeout(120)
def test_files_list_exists_info_make_dir_rename_remove(e2b_env):
    from e2b.exceptions import InvalidArgumentException
    from e2b.sandbox.filesystem.filesystem import FileType
    from e2b_code_interpreter import Sandbox

    with Sandbox.create() as sbx:
        sbx.files.write("/home/user/a/b.txt", "12345")
        assert sbx.files.make_dir("/home/user/a/c") is True
        assert sbx.files.make_dir("/home/user/a/c") is False  # already there
        listed = {e.name: e for e in sbx.files.list("/home/user/a")}
        assert set(listed) == {"b.txt", "c"}
        assert (listed["b.txt"].type, listed["b.txt"].size, listed["b.txt"].path) == (FileType.FILE, 5, "/home/user/a/b.txt")
        assert listed["c"].type == FileType.DIR
        assert {e.path for e in sbx.files.list("/home/user", depth=2)} >= {"/home/user/a", "/home/user/a/b.txt"}
        assert sbx.files.exists("a/b.txt") and not sbx.files.exists("a/nope")
        assert sbx.files.get_info("a/b.txt").size == 5
        moved = sbx.files.rename("a/b.txt", "/home/user/moved.txt")
        assert moved.path == "/home/user/moved.txt" and sbx.files.read("moved.txt") == "12345"
        sbx.files.remove("a")
        assert not sbx.files.exists("a/c")
        sbx.run_code("import os\nos.symlink('/etc', 'etc-link')")
        with pytest.raises(Exception) as info:
            sbx.files.list("/home/user/etc-link/ssl")
        assert "passwd" not in str(info.value)
        with pytest.raises(InvalidArgumentException):
            sbx.files.list("/etc")
        user_globals = sbx.run_code("print(sorted(k for k in globals() if not k.startswith('__')))").logs.stdout
        assert user_globals == ["['os']\n"]  # the service's own calls left nothing in the user's globals



@pytest.mark.timeout(120)
def test_commands_run_in_the_foreground(e2b_env):
    from e2b.sandbox.commands.command_handle import CommandExitException
    from e2b_code_interpreter import Sandbox

    with Sandbox.create(envs={"GREETING": "hello"}) as sbx:
        out: list[str] = []
        r = sbx.commands.run("echo $GREETING $X; pwd; echo oops >&2", envs={"X": "there"}, on_stdout=out.append)
        assert r.exit_code == 0 and r.stdout.startswith("hello there\n") and r.stderr == "oops\n"
        assert "".join(out) == r.stdout
        sbx.files.make_dir("sub")
        assert sbx.commands.run("pwd", cwd="/home/user/sub").stdout.rstrip().endswith("/sub")
        with pytest.raises(CommandExitException) as info:
            sbx.commands.run("echo before; exit 3")
        assert info.value.exit_code == 3 and info.value.stdout == "before\n"
        with pytest.raises(Exception, match="does not serve"):
            sbx.commands.run("sleep 5", background=True).kill()


@pytest.mark.timeout(120)
def test_control_plane_lists_by_metadata_sets_timeout_and_connects(e2b_env):
    from e2b_code_interpreter import Sandbox, SandboxQuery

    a = Sandbox.create(metadata={"run": "r1"}, timeout=120)
    b = Sandbox.create(metadata={"run": "r2"})
    try:
        found = Sandbox.list(query=SandboxQuery(metadata={"run": "r1"})).next_items()
        assert [s.sandbox_id for s in found] == [a.sandbox_id]
        info = a.get_info()
        assert info.metadata == {"run": "r1"} and 100 < (info.end_at - info.started_at).total_seconds() <= 121
        a.set_timeout(600)
        assert (a.get_info().end_at - a.get_info().started_at).total_seconds() > 500
        again = Sandbox.connect(a.sandbox_id)
        assert again.run_code("print('same')").logs.stdout == ["same\n"]
    finally:
        a.kill()
        b.kill()
    assert Sandbox.list(query=SandboxQuery(metadata={"run": "r1"})).next_items() == []


@pytest.mark.timeout(120)
def test_auth_keys_tokens_and_tenants(e2b_env):
    from e2b.exceptions import AuthenticationException
    from e2b_code_interpreter import Sandbox

    service = e2b_env
    for key in (None, "wf_wrong"):
        headers = {"X-API-KEY": key} if key else {}
        resp = httpx.post(service.url + "/v2/sandboxes", json={"templateID": "base"}, headers=headers)
        assert resp.status_code == 401 and resp.json()["code"] == 401, resp.text
    with pytest.raises(AuthenticationException):
        Sandbox.create(api_key="wf_wrong")
    sbx = Sandbox.create()
    try:
        bob = service.keys["bob"]
        mine = httpx.get(f"{service.url}/sandboxes/{sbx.sandbox_id}", headers={"X-API-KEY": bob})
        unknown = httpx.get(f"{service.url}/sandboxes/{'0' * 32}", headers={"X-API-KEY": bob})
        assert (mine.status_code, mine.json()["code"]) == (unknown.status_code, unknown.json()["code"]) == (404, 404)
        assert mine.json()["message"].replace(sbx.sandbox_id, "ID") == unknown.json()["message"].replace("0" * 32, "ID")
        # the data plane: a sandbox id alone reaches nothing; bob's key reaches nothing of alice's
        body = {"code": "print(1)"}
        for headers in ({}, {"X-API-KEY": bob}, {"X-Access-Token": "nope"}):
            resp = httpx.post(service.url + "/execute", json=body, headers={"E2b-Sandbox-Id": sbx.sandbox_id, **headers})
            assert resp.status_code in (401, 502) and "print" not in resp.text, resp.text
        assert Sandbox.kill(sbx.sandbox_id, api_key=bob) is False  # 404: not bob's
    finally:
        sbx.kill()


@pytest.mark.timeout(120)
def test_a_client_that_goes_away_stops_its_cell_and_the_sandbox_goes_on(e2b_env):
    from e2b_code_interpreter import Sandbox

    with Sandbox.create() as sbx:
        sbx.run_code("x = 1")
        headers = {"E2b-Sandbox-Id": sbx.sandbox_id, "X-Access-Token": sbx._envd_access_token}
        code = "import time\nprint('started', flush=True)\nfor i in range(600):\n    time.sleep(0.05)\nx = 2"
        with httpx.stream("POST", e2b_env.url + "/execute", json={"code": code}, headers=headers, timeout=30) as resp:
            for line in resp.iter_lines():
                if '"stdout"' in line:
                    break  # leave mid-cell: the connection closes
        started = time.monotonic()
        assert sbx.run_code("print(x)").logs.stdout == ["1\n"]
        assert time.monotonic() - started < 10


@pytest.mark.timeout(120)
def test_bad_input_gets_clear_json_errors(e2b_env):
    service = e2b_env
    key = {"X-API-KEY": service.keys["alice"]}
    cases = [
        (httpx.post(service.url + "/v2/sandboxes", content=b"{not json", headers={**key, "Content-Type": "application/json"}), 422),
        (httpx.post(service.url + "/v2/sandboxes", json={"templateID": 7}, headers=key), 422),
        (httpx.post(service.url + "/v2/sandboxes", json={"templateID": "base", "envVars": {f"V{i}": "x" * 1000 for i in range(300)}},
                    headers=key), 422),
        (httpx.post(service.url + "/v2/sandboxes", json={"templateID": "no-such-pool"}, headers=key), 404),
        (httpx.post(service.url + "/v2/sandboxes", content=b"x" * (5 << 20), headers=key), 413),
    ]
    for resp, status in cases:
        assert resp.status_code == status, resp.text
        body = resp.json()
        assert body["code"] == status and isinstance(body["message"], str) and body["message"]
    assert "default" in cases[3][0].json()["message"]  # it names the pools the key may use
    assert "4194304" in cases[4][0].json()["message"]  # and the limit


@pytest.mark.timeout(120)
def test_quotas_answer_429_naming_the_quota(e2b_env, service):
    from e2b.exceptions import RateLimitException
    from e2b_code_interpreter import Sandbox

    key = service.add_tenant("carol", max_sandboxes=1)
    first = Sandbox.create(api_key=key)
    try:
        with pytest.raises(RateLimitException, match="max_sandboxes"):
            Sandbox.create(api_key=key)
    finally:
        first.kill()
    Sandbox.create(api_key=key).kill()  # the place came back
    busy = service.add_tenant("frank", max_running=1)
    sbx = Sandbox.create(api_key=busy)
    try:
        headers = {"E2b-Sandbox-Id": sbx.sandbox_id, "X-Access-Token": sbx._envd_access_token}
        with httpx.stream("POST", service.url + "/execute", json={"code": "import time\nprint(1, flush=True)\n"
                                                                        "time.sleep(30)"},
                          headers=headers, timeout=60) as running:
            lines = running.iter_lines()  # held: a dropped iterator closes the response, which stops the cell
            assert '"stdout"' in next(lines)  # the first cell runs
            second = httpx.post(service.url + "/execute", json={"code": "print(2)"}, headers=headers)
            assert second.status_code == 429 and "max_running" in second.json()["message"], second.text
            lines.close()
    finally:
        sbx.kill()
    limited = service.add_tenant("dave", rate_per_s=2)
    answers = [httpx.get(service.url + "/v2/sandboxes", headers={"X-API-KEY": limited}) for _ in range(6)]
    assert 429 in [a.status_code for a in answers]
    assert "rate" in next(a for a in answers if a.status_code == 429).json()["message"]


@pytest.mark.timeout(120)
def test_a_key_revoked_mid_stream_ends_the_stream_and_its_sandboxes(e2b_env, service):
    from e2b_code_interpreter import Sandbox

    from warmfleet.cli.http import _store

    key = service.add_tenant("erin")
    sbx = Sandbox.create(api_key=key)
    headers = {"E2b-Sandbox-Id": sbx.sandbox_id, "X-Access-Token": sbx._envd_access_token}
    code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
    lines = []
    started = time.monotonic()
    with httpx.stream("POST", service.url + "/execute", json={"code": code}, headers=headers, timeout=60) as resp:
        for line in resp.iter_lines():
            lines.append(line)
            if '"started' in line:
                assert _store(service.redis_url).revoke(key) == 1
    assert '"Unauthorized"' in lines[-1] and "end_of_execution" not in "".join(lines), lines
    assert time.monotonic() - started < 30  # the re-check, not the cell's 60 s
    after = httpx.post(service.url + "/execute", json={"code": "print(1)"}, headers=headers)
    assert after.status_code == 401 and after.json()["code"] == 401
