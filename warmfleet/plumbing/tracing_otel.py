"""The OpenTelemetry side of warmfleet/plumbing/tracing.py, imported only once tracing is on (it
imports nothing of ours: OtelJobTrace has tracing.JobTrace's two methods)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()  # W3C traceparent / tracestate


@contextlib.contextmanager
def submit_span(tracer: Any, pool: str, jobs: int) -> Iterator[dict[str, str]]:
    with tracer.start_as_current_span(
        "warmfleet.submit", kind=trace.SpanKind.PRODUCER,
        attributes={"messaging.system": "redis", "messaging.destination.name": pool, "warmfleet.jobs": jobs},
    ):
        carrier: dict[str, str] = {}
        _propagator.inject(carrier)
        yield carrier


def _entry_time_ns(entry_id: str) -> int | None:
    """A stream entry id starts with Redis's clock in ms when the entry was added."""
    try:
        return int(entry_id.split("-", 1)[0]) * 1_000_000
    except ValueError:
        return None


class OtelJobTrace:
    def __init__(self, tracer: Any, carrier: dict[str, str], entry_id: str, attributes: dict[str, str]) -> None:
        self.tracer = tracer
        enqueued = _entry_time_ns(entry_id)
        now = time.time_ns()
        start = enqueued if enqueued is not None and enqueued <= now else now
        self.job = tracer.start_span("warmfleet.job", context=_propagator.extract(carrier or {}),
                                     kind=trace.SpanKind.CONSUMER, start_time=start,
                                     attributes={**attributes, "messaging.message.id": entry_id})
        self.context = trace.set_span_in_context(self.job)
        tracer.start_span("warmfleet.queue_wait", context=self.context, start_time=start).end(end_time=now)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        with self.tracer.start_as_current_span(f"warmfleet.{name}", context=self.context):
            yield

    def end(self, status: str = "") -> None:
        if status:
            self.job.set_attribute("warmfleet.cli.status", status)
        self.job.end()


def provider_from_env(exporters: str) -> Any:
    """An SDK TracerProvider as the standard OTEL_* variables describe it: the resource from
    OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, each exporter of OTEL_TRACES_EXPORTER
    found by its entry point (otlp, console, ...) and configured by its own variables."""
    from importlib.metadata import entry_points

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create())
    for name in (n.strip() for n in exporters.split(",") if n.strip()):
        found = list(entry_points(group="opentelemetry_traces_exporter", name=name))
        if not found:
            raise ImportError(f"no OpenTelemetry traces exporter named {name!r} is installed")
        provider.add_span_processor(BatchSpanProcessor(found[0].load()()))
    return provider
