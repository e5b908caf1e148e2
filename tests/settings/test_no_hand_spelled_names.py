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


def test_scripts_and_example_settings_files_spell_only_names_the_tree_defines():
    """scripts/install-runsc cannot import the tree, and the example Secrets under
    k8s/overlays/ are files users copy: their names are defined in the tree all the same
    (the Install group; the executor's and sidecar's), so nothing refuses them."""
    from warmfleet.settings import known_names

    spelled = set()
    for top in ("scripts", os.path.join("k8s", "overlays")):
        for d, _dirs, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                with open(os.path.join(d, name), encoding="utf-8", errors="replace") as f:
                    spelled |= set(re.findall(r"WARMFLEET_[A-Z0-9_]+", f.read()))
    assert {"WARMFLEET_RUNSC_SUITE", "WARMFLEET_REDIS_URL"} <= spelled
    assert spelled - known_names() == set()
