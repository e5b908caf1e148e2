"""warmfleet.plumbing.tracing's switch: the standard OTEL_* variables turn an executor's tracing on
(exporters found by their entry points), and nothing else does. The spans themselves:
tests/executor/test_slot.py (client and executor with the SDK's in-memory exporter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from warmfleet.plumbing import tracing


@pytest.mark.parametrize("env", [{}, {"OTEL_TRACES_EXPORTER": "none"},
                                 {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}])
def test_tracing_stays_off_unless_an_exporter_is_named(env):
    assert tracing.configure_from_env(env) is False
    assert tracing.for_job({}, "1-0", {}) is tracing.NO_TRACE


def test_an_exporter_named_in_otel_traces_exporter_turns_it_on_with_the_env_resource():
    """In a fresh interpreter, as an executor starts: the console exporter binds sys.stdout when
    the SDK is first imported, so in this process it would write to whatever stream pytest had
    installed for an earlier test."""
    code = (
        "from warmfleet.plumbing import tracing\n"
        "assert tracing.configure_from_env() is True\n"
        "spans = tracing.for_job({}, '1700000000000-0', {'warmfleet.job_id': 'j'})\n"
        "assert spans is not tracing.NO_TRACE\n"
        "spans.end('ok')\n"
        "tracing.shutdown()\n"  # flush: the console exporter prints the span with its resource
    )
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "wf-executor-test",
           "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci,k8s.pod.name=pod-7"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out, decoder, spans_out = proc.stdout, json.JSONDecoder(), []
    while out.strip():
        span, end = decoder.raw_decode(out.strip())
        spans_out.append(span)
        out = out.strip()[end:]
    assert "warmfleet.job" in {span["name"] for span in spans_out}
    want = {"service.name": "wf-executor-test", "deployment.environment": "ci", "k8s.pod.name": "pod-7"}
    for span in spans_out:
        assert want.items() <= span["resource"]["attributes"].items(), span["resource"]


def test_an_exporter_that_is_not_installed_is_named():
    try:
        with pytest.raises(ImportError, match="no-such-exporter"):
            tracing.configure_from_env({"OTEL_TRACES_EXPORTER": "no-such-exporter"})
    finally:
        tracing.shutdown()
        tracing.use(None)

def test_a_client_without_a_configured_sdk_carries_no_trace_context():
    with tracing.submit_span("default") as carrier:
        assert carrier == {}
