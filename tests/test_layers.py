"""The import layers hold (pyproject.toml [tool.importlinter]) and nothing imports in a circle.

contract (schema, messages, keys, snapshot, ...) <- executor | dispatcher | gc_sidecar <- cli, local runtime, bench
"""

from __future__ import annotations

import os
import subprocess
import sys

import grimp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("warmfleet", "executor", "dispatcher", "gc_sidecar", "egress")


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": ROOT}


def test_the_import_contracts_hold():
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    out = subprocess.run([lint, "--no-cache"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout and out.stdout.count(" KEPT") >= 6, out.stdout


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_in_a_circle():
    """Counting imports under TYPE_CHECKING too: a circle there is a design circle."""
    sys.path.insert(0, ROOT)
    try:
        graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    finally:
        sys.path.remove(ROOT)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycles(edges) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check can fail


def test_every_module_imports_cleanly_and_warmfleet_alone_pulls_in_no_upper_layer():
    probe = """
import importlib, pkgutil, sys
import warmfleet
upper = sorted(m for m in sys.modules if m.split(".")[0] in ("dispatcher", "executor", "gc_sidecar"))
assert not upper, upper
from warmfleet import AsyncClient, Client, Result
for pkg in ("warmfleet", "executor", "dispatcher", "gc_sidecar"):
    module = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(module.__path__, pkg + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr
