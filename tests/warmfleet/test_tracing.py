"""warmfleet.plumbing.tracing's switch: the standard OTEL_* variables turn an executor's tracing on
(exporters found by their entry points), and nothing else does. The spans themselves:
tests/executor/test_slot.py (client and executor with the SDK's in-memory exporter)."""

from __future__ import annotations

import json

import pytest

from warmfleet.plumbing import tracing


@pytest.mark.parametrize("env", [{}, {"OTEL_TRACES_EXPORTER": "none"},
                                 {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}])
def test_tracing_stays_off_unless_an_exporter_is_named(env):
    assert tracing.configure_from_env(env) is False
    assert tracing.for_job({}, "1-0", {}) is tracing.NO_TRACE


def test_an_exporter_named_in_otel_traces_exporter_turns_it_on_with_the_env_resource(monkeypatch, capsys):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "wf-executor-test")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci,k8s.pod.name=pod-7")
    try:
        assert tracing.configure_from_env({"OTEL_TRACES_EXPORTER": "console"}) is True
        spans = tracing.for_job({}, "1700000000000-0", {"warmfleet.job_id": "j"})
        assert spans is not tracing.NO_TRACE
        spans.end("ok")
        tracing.shutdown()  # flush: the console exporter prints the span with its resource
        out, decoder, spans_out = capsys.readouterr().out, json.JSONDecoder(), []
        while out.strip():
            span, end = decoder.raw_decode(out.strip())
            spans_out.append(span)
            out = out.strip()[end:]
        assert "warmfleet.job" in {span["name"] for span in spans_out}
        want = {"service.name": "wf-executor-test", "deployment.environment": "ci", "k8s.pod.name": "pod-7"}
        for span in spans_out:
            assert want.items() <= span["resource"]["attributes"].items(), span["resource"]
        with pytest.raises(ImportError, match="no-such-exporter"):
            tracing.configure_from_env({"OTEL_TRACES_EXPORTER": "no-such-exporter"})
    finally:
        tracing.shutdown()
        tracing.use(None)


def test_a_client_without_a_configured_sdk_carries_no_trace_context():
    with tracing.submit_span("default") as carrier:
        assert carrier == {}
