"""The Celery task with a real Celery worker process on a real Redis broker, forwarding
to the real fleet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import redis

from dispatcher.integrations.celery_task import TASK_NAME, make_app


def _socket_path(url: str) -> str:
    assert url.startswith("unix://")
    return url[len("unix://"):].split("?")[0]


@pytest.fixture(scope="module")
def celery_worker(fleet, tmp_path_factory):
    # Broker and result backend: database 1 of the fleet's own redis-server, on its Unix socket.
    broker = f"redis+socket://{_socket_path(fleet.client_url)}?virtual_host=1"
    env = {
        **os.environ,
        "WARMFLEET_CELERY_BROKER_URL": broker,
        "WARMFLEET_CELERY_RESULT_BACKEND": broker,
        "WARMFLEET_REDIS_URL": fleet.client_url,
    }
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "dispatcher.integrations.celery_task", "worker",
             "--pool", "threads", "--concurrency", "4", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--loglevel", "INFO"],
            env=env, stdout=logf, stderr=logf, start_new_session=True,
        )
    app = make_app(broker, broker)
    try:
        yield app, proc
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # warm shutdown
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        r = redis.Redis.from_url(fleet.client_url + "?db=1")
        r.flushdb()
        r.close()


@pytest.mark.timeout(90)
def test_worker_forwards_jobs_to_the_fleet_and_returns_result_dicts(celery_worker):
    app, proc = celery_worker
    task = app.tasks[TASK_NAME]
    # .get(timeout) is the readiness wait: the message sits in the broker until the worker is up.
    first = task.delay("import os; print(open('/proc/version').read().split()[2])").get(timeout=60)
    assert first["status"] == "ok" and first["stdout"] == "4.4.0\n"  # it ran under gVisor
    many = [task.delay(f"print({i} * 3)") for i in range(20)]
    assert [m.get(timeout=30)["stdout"] for m in many] == [f"{i * 3}\n" for i in range(20)]
    failing = task.apply_async(args=["raise ValueError('nope')"], kwargs={"timeout": 5}).get(timeout=30)
    assert failing["status"] == "error" and "ValueError: nope" in failing["stderr"]
    rejected = task.delay("print(1)", memory_mb=1).get(timeout=30)
    assert rejected["status"] == "rejected" and "memory_mb" in rejected["error"]
    assert proc.poll() is None
