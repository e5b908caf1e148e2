"""The Celery alternative: a worker (Redis broker, prefork pool) that runs each job as a
fresh `python -I -c` subprocess with a timeout and no isolation. Broker and result
backend come from BENCH_CELERY_BROKER (a private Unix-socket Redis the benchmark starts)."""

from __future__ import annotations

import os
import subprocess
import sys

from celery import Celery

PYTHON = os.environ.get("BENCH_PYTHON", sys.executable)
_url = os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/0")
CONF = dict(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=600,
)
app = Celery("warmfleet_bench", broker=_url, backend=_url)
app.conf.update(CONF)


def client(url: str) -> Celery:
    """A fresh client app per worker run: a Celery app keeps its broker pool and result
    backend connections, so one reused after its Redis stopped cannot reconnect."""
    c = Celery("warmfleet_bench_client", broker=url, backend=url)
    c.conf.update(CONF)
    return c


@app.task(name="bench.run_code")
def run_code(code: str, timeout: float = 30.0) -> dict:
    try:
        out = subprocess.run([PYTHON, "-I", "-c", code], capture_output=True, timeout=timeout, text=True)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "stdout": ""}
    return {"status": "ok" if out.returncode == 0 else "error", "stdout": out.stdout}
