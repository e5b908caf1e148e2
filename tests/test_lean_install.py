"""`pip install warmfleet` is the client alone: in a fresh venv with no extras, the client
imports and none of the server roles' dependencies is installed; with the `testing`
extra, a user's own pytest suite runs the real Client against warmfleet.testing there.

Packages come from the machine's package index (PyPI), as a user's would; the project's
wheel is built once from this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_ONLY = ("kubernetes", "psutil", "prometheus_client", "h11", "rich", "yaml")
PIP_TIMEOUT_S = 240

USER_TEST = textwrap.dedent('''
    """A user's unit test of their own code built on the client: a grader."""
    import pytest

    from warmfleet import Client, Result, SessionEnded, Status
    from warmfleet.testing import ManualClock, StandInFleet


    class Grader:
        def __init__(self, client: Client) -> None:
            self.client = client

        def grade(self, answer: str) -> str:
            result: Result = self.client.run(answer + "\\nprint('passed')", timeout=2)
            if result.status is Status.TIMEOUT:
                return "too slow"
            return "pass" if result.ok and result.stdout.endswith("passed\\n") else "fail"


    @pytest.mark.filterwarnings("ignore::warmfleet.testing.NotIsolatedWarning")
    def test_grader():
        with StandInFleet(clock=ManualClock()) as fleet, fleet.client() as client:
            grader = Grader(client)
            assert grader.grade("assert 1 + 1 == 2") == "pass"
            assert grader.grade("assert 1 + 1 == 3") == "fail"
            assert grader.grade("import time; time.sleep(10)") == "too slow"
            with client.session(idle_timeout=60) as s:
                s.run("total = 40")
                assert s.run("print(total + 2)").stdout == "42\\n"
                fleet.advance(61)
                with pytest.raises(SessionEnded, match="idle_timeout"):
                    s.run("total")
''')


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, **kwargs)
    assert out.returncode == 0, f"{argv}: {out.stdout[-3000:]}{out.stderr[-3000:]}"
    return out


def _absent(python: str) -> list[str]:
    """The server-only modules this interpreter can import (should be none)."""
    code = f"import importlib.util; print([m for m in {SERVER_ONLY!r} if importlib.util.find_spec(m)])"
    return eval(_run([python, "-I", "-c", code]).stdout)  # noqa: S307 - our own printed list


@pytest.mark.timeout(60)
def test_the_public_names_and_the_client_commands_load_no_server_dependency():
    """The fast check beside the venv one: in this (full) install, nothing the client or
    its CLI commands import reaches a server role's dependency. (redis-py imports
    OpenTelemetry where it is installed, whose SDK imports psutil: the otel extra's
    doing, and absent from a lean install, so it is kept out here.)"""
    code = (
        "import sys; sys.modules['opentelemetry'] = None; import warmfleet; [getattr(warmfleet, n) for n in warmfleet.__all__]; "
        "import dispatcher, warmfleet.testing; "
        "from warmfleet.cli import main, status, shell, batch; main.build_parser(); "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SERVER_ONLY!r}))"
    )
    assert _run([sys.executable, "-c", code], cwd=ROOT).stdout.strip() == "[]"


@pytest.mark.timeout(600)
def test_a_lean_install_is_the_client_and_runs_a_users_test_on_the_stand_in(tmp_path):
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), ROOT])
    (wheel,) = wheels.iterdir()
    _run(["/usr/bin/python3", "-m", "venv", str(venv)])
    python, pip = str(venv / "bin" / "python"), [str(venv / "bin" / "python"), "-m", "pip", "-q"]
    _run([*pip, "install", str(wheel)])

    client = _run([python, "-I", "-c", (
        "import sys; from warmfleet import Client, AsyncClient, Result, Session, AsyncSession, SessionEnded, "
        "SessionLost, InvalidJob, WaitTimeout, NoFleetConfigured, Status; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in " + repr(SERVER_ONLY) + "))"
    )])
    assert client.stdout.strip() == "[]"
    assert _absent(python) == []
    installed = _run([*pip, "list", "--format=freeze"]).stdout.lower()
    assert not [p for p in ("kubernetes", "psutil", "prometheus-client", "h11", "rich", "pyyaml") if f"{p}==" in installed]

    # The server commands say which extra they need; the client commands run.
    # (A state dir of its own: no `warmfleet up` running on this machine is found and used.)
    cli, env = str(venv / "bin" / "warmfleet"), {"PATH": os.environ["PATH"], "WARMFLEET_STATE_DIR": str(tmp_path)}
    up = subprocess.run([cli, "up"], capture_output=True, text=True, timeout=60, env=env)
    assert up.returncode == 2 and "pip install 'warmfleet[fleet]'" in up.stderr, up.stderr
    status = subprocess.run([cli, "status"], capture_output=True, text=True, timeout=60, env=env)
    assert status.returncode == 2 and "no Redis URL" in status.stderr, status.stderr

    _run([*pip, "install", f"{wheel}[testing]", "pytest>=8"])
    assert _absent(python) == []  # the testing extra brings no server dependency either
    (tmp_path / "test_user.py").write_text(USER_TEST)
    user = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert user.returncode == 0 and "1 passed" in user.stdout, user.stdout + user.stderr
