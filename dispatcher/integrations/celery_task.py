"""For controllers already on Celery: a task that forwards code to the fleet and returns
the Result as a dict (JSON-serialisable, so any result backend stores it).

Register it on your own app::

    from dispatcher.integrations.celery_task import register
    run_code = register(app, redis_url="redis://fleet:6379/0")
    run_code.delay("print(1)", timeout=5).get()   # {'status': 'ok', 'stdout': '1\\n', ...}

or run a worker on the ready-made app, configured by the settings of the `celery` role
(celery_broker_url, celery_result_backend, redis_url: docs/reference/settings.md)::

    celery -A dispatcher.integrations.celery_task worker

The Celery worker only waits on the fleet (no code runs in it), so a few worker
processes with many threads or greenlets serve many jobs in flight.
Needs ``pip install 'warmfleet[celery]'``.
"""

from __future__ import annotations

import threading

from celery import Celery

from dispatcher import Client, InvalidJob
from warmfleet.contract.schema import Result, Status
from warmfleet.settings import CelerySettings, load

TASK_NAME = "warmfleet.run"


def register(app: Celery, *, redis_url: str | None = None, pool: str | None = None, name: str = TASK_NAME):
    """Add the forwarding task to `app` and return it."""
    local = threading.local()  # Client is not thread-safe: one per worker thread, reused

    def client() -> Client:
        if getattr(local, "client", None) is None:
            local.client = Client(redis_url, pool=pool)
        return local.client

    @app.task(name=name)
    def run_code(code: str, timeout: float | None = None, cpu_time: float | None = None, memory_mb: int | None = None) -> dict:
        """None: the fleet's published default."""
        try:
            result = client().run(code, timeout=timeout, cpu_time=cpu_time, memory_mb=memory_mb)
        except InvalidJob as exc:
            result = Result(job_id="", status=Status.REJECTED, error=str(exc))
        return result.model_dump(mode="json")

    return run_code


def make_app(broker_url: str, result_backend: str | None = None, **register_kwargs) -> Celery:
    app = Celery("warmfleet", broker=broker_url, backend=result_backend or broker_url)
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    register(app, **register_kwargs)
    return app


def __getattr__(name: str):
    # `celery -A dispatcher.integrations.celery_task` looks up `app`: build it from the
    # environment then, not at import (importing must not need a broker).
    if name == "app":
        s = load(CelerySettings, strict=False)
        globals()["app"] = built = make_app(s.celery_broker_url, s.celery_result_backend)
        return built
    raise AttributeError(name)
