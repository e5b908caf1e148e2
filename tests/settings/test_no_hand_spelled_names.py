"""No WARMFLEET_* variable is spelled outside warmfleet/settings/ (tests may): launchers
write environments from the tree (to_env), so a renamed or retyped setting cannot leave a
launcher behind. Checked on the source, string literals (docstrings included) and comments."""

from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CODE = ("warmfleet", "executor", "dispatcher", "gc_sidecar", "egress", "k8s", "benchmarks")
NAME = re.compile(r"WARMFLEET_[A-Z]")


def test_no_variable_name_outside_the_settings_package():
    found = []
    paths = [os.path.join(ROOT, "Dockerfile")]
    for top in CODE:
        for d, _dirs, files in os.walk(os.path.join(ROOT, top)):
            paths += [os.path.join(d, f) for f in files if f.endswith((".py", ".sh")) or "." not in f]
    for path in paths:
        rel = os.path.relpath(path, ROOT)
        if rel.startswith(os.path.join("warmfleet", "settings") + os.sep) or "__pycache__" in rel:
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if NAME.search(line):
                    found.append(f"{rel}:{n}: {line.strip()}")
    assert found == []


def test_the_shell_scripts_read_only_names_the_tree_defines():
    """scripts/install-runsc cannot import the tree; its names are defined there all the same
    (the Install group), so `warmfleet up` does not refuse them."""
    from warmfleet.settings import known_names

    spelled = set()
    for name in os.listdir(os.path.join(ROOT, "scripts")):
        with open(os.path.join(ROOT, "scripts", name), encoding="utf-8", errors="replace") as f:
            spelled |= set(re.findall(r"WARMFLEET_[A-Z0-9_]+", f.read()))
    assert spelled and spelled <= known_names()
