"""The constraint executor/lean exists for: what a slot runner and a session zygote load.

Every job is a fork of a runner, every session a fork of the zygote, and inside gVisor a
fork costs in proportion to the parent's mappings (docs/design/field-notes.md: `python -S -I`
with 36 maps forks in ~9 ms, after importing json/re/decimal/asyncio ~22 ms). So the
modules they import are pinned here, stdlib ones included: a new import (an `import asyncio`
passes every import-linter contract) fails this test until it is added to the allowlist
beside it on purpose, with its cost in mind."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALLOWLIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lean_modules.txt")


def allowed(section: str) -> set[str]:
    """The names under `[section]` in lean_modules.txt."""
    names, current = set(), None
    for line in open(ALLOWLIST):
        line = line.split("#", 1)[0].strip()
        if line.startswith("["):
            current = line.strip("[]")
        elif line and current == section:
            names.add(line)
    return names


def loaded_by(statement: str, after: str = "") -> set[str]:
    """Modules a `python -S -I` (as the runner is started: executor/boot.py) adds by `statement`."""
    probe = (f"import sys; sys.path.insert(0, sys.argv[1]); {after}; before = set(sys.modules); {statement}; "
             "print('\\n'.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-S", "-I", "-c", probe, ROOT],
                         capture_output=True, text=True, check=True, timeout=60)
    return set(out.stdout.split())


@pytest.mark.parametrize("section, statement, after", [
    ("runner", "from executor.lean import runner", "pass"),
    ("session_zygote", "from executor.lean import session_zygote", "from executor.lean import runner"),
])
def test_a_lean_process_loads_only_the_modules_allowed(section, statement, after):
    new = loaded_by(statement, after)
    extra = new - allowed(section)
    assert not extra, f"{statement} now also loads {sorted(extra)}: each adds to the cost of every fork " \
                      f"(add it to tests/executor/lean_modules.txt [{section}] only on purpose)"
    # Nothing of the server roles or site-packages, whatever the allowlist says.
    assert not {m.split(".")[0] for m in new} & {"redis", "pydantic", "psutil", "dispatcher", "gc_sidecar", "egress"}


def test_the_allowlist_is_not_stale():
    """An entry nothing loads any more is removed, so the list stays the real cost."""
    assert allowed("runner") <= loaded_by("from executor.lean import runner", "pass")
