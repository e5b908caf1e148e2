"""`warmfleet shell` as a person types into it: statements (a block with continuation
lines, an expression echoed) run in one sandboxed session, state kept between them."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.timeout(90)
def test_shell_runs_each_statement_in_one_session(sfleet):
    typed = "x = 2\nfor i in range(3):\n    x += i\n\nprint('x is', x)\nx * 10\nopen('/proc/version').read()[:17]\n1/0\nx\n"
    proc = subprocess.run(
        [sys.executable, "-m", "warmfleet.cli.main", "shell", "--redis-url", sfleet.client_url],
        input=typed, capture_output=True, text=True, timeout=80,
    )
    assert proc.returncode == 0, proc.stderr
    assert "x is 5\n" in proc.stdout
    assert "50\n" in proc.stdout  # an expression's value is echoed, as at Python's prompt
    assert "'Linux version 4.4'" in proc.stdout  # it ran under gVisor
    assert "ZeroDivisionError" in proc.stderr
    assert proc.stdout.rstrip().endswith(">>> 5\n>>>")  # the error did not lose x
    assert "session " in proc.stderr  # the banner names the session
