"""OpenTelemetry spans along a job's path, when tracing is on, else nothing at all.

The client opens `warmfleet.submit` (PRODUCER) in the caller's current trace and carries
its W3C trace context in the job entry (`Job.trace`). The executor continues that trace:
`warmfleet.job` (CONSUMER, from the entry's enqueue time to the stored result) with the
children `warmfleet.queue_wait`, `warmfleet.run` (in the sandbox) and `warmfleet.store`.
So a controller's own trace shows where a job's time went, under its request.

This module imports no OpenTelemetry: tracing off costs an executor pod no import and a
client one dict lookup per submit. On:
- in a client, when the application has configured an OpenTelemetry SDK (a real
  TracerProvider is installed; `opentelemetry.trace` already imported), or `use(provider)`;
- in an executor, when the standard `OTEL_TRACES_EXPORTER` names an exporter (not "none")
  and `OTEL_SDK_DISABLED` is not true: `configure_from_env()` then sets up the SDK from the
  standard OTEL_* variables (service name, resource attributes, exporter settings).
  Needs the `otel` extra (`pip install warmfleet[otel]`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

_tracer: Any = None  # an opentelemetry Tracer once tracing is on
_provider: Any = None
_pinned = False  # use() chose the provider: do not follow the global one


class JobTrace:
    """The executor's spans of one job. This base does nothing (tracing off)."""

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        yield

    def end(self, status: str = "") -> None:
        pass


NO_TRACE = JobTrace()


def use(provider: Any) -> None:
    """Trace with this TracerProvider (tests; applications that keep one off the global)."""
    global _tracer, _pinned, _provider
    _tracer = provider.get_tracer("warmfleet") if provider is not None else None
    _pinned = provider is not None
    _provider = provider


def shutdown() -> None:
    """Flush and stop what configure_from_env() started (an executor's exit)."""
    if _provider is not None and hasattr(_provider, "shutdown"):
        _provider.shutdown()


_client_cache: tuple[Any, Any] = (None, None)  # (the global provider seen last, our tracer of it)
_NO_SPAN = contextlib.nullcontext({})  # tracing off: enter yields an empty (never mutated) carrier


def _client_tracer() -> Any:
    """The tracer a client uses now: the application's, if it configured OpenTelemetry
    (redis-py may import parts of it on its own: that alone turns nothing on)."""
    global _client_cache
    trace = sys.modules.get("opentelemetry.trace")
    if _pinned or trace is None:
        return _tracer
    # The global provider an application installed; get_tracer_provider() would also work
    # but reads the environment on every call (~4 us a submit while nothing is installed).
    provider = getattr(trace, "_TRACER_PROVIDER", None) if hasattr(trace, "_TRACER_PROVIDER") else trace.get_tracer_provider()
    if provider is None:
        return None
    if provider is not _client_cache[0]:
        real = type(provider).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider")
        _client_cache = (provider, provider.get_tracer("warmfleet") if real else None)
    return _client_cache[1]


def submit_span(pool: str, jobs: int = 1) -> "contextlib.AbstractContextManager[dict[str, str]]":
    """Around enqueueing: enter yields the trace context to put in the job(s), {} when off."""
    tracer = _client_tracer()
    if tracer is None:
        return _NO_SPAN
    from warmfleet.plumbing import tracing_otel

    return tracing_otel.submit_span(tracer, pool, jobs)


def configure_from_env(environ: dict[str, str] | None = None) -> bool:
    """An executor's start: turn tracing on if the standard OTEL_* variables ask for it.
    True if on. Without the `otel` extra installed, raises ImportError naming it."""
    env = os.environ if environ is None else environ
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not exporters or exporters == "none" or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    try:
        from warmfleet.plumbing import tracing_otel
    except ImportError as exc:
        raise ImportError(f"OTEL_TRACES_EXPORTER={exporters} but the otel extra is missing "
                          f"(pip install 'warmfleet[otel]'): {exc}") from exc
    use(tracing_otel.provider_from_env(exporters))
    return True


def for_job(carrier: dict[str, str], entry_id: str, attributes: dict[str, str]) -> JobTrace:
    """The executor's spans of one job, continuing the client's trace (NO_TRACE when off)."""
    if _tracer is None:
        return NO_TRACE
    from warmfleet.plumbing import tracing_otel

    return tracing_otel.OtelJobTrace(_tracer, carrier, entry_id, attributes)
