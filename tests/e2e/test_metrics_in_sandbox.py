"""The metrics endpoint inside a real runsc pod (network `none`, so scraped from inside
the sandbox with `runsc exec`, as a kubelet-side sidecar or port-forward would)."""

from __future__ import annotations

import subprocess

from prometheus_client.parser import text_string_to_metric_families

SCRAPE = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=5).read().decode())"


def test_pod_in_gvisor_serves_metrics(fleet, client):
    assert client.run("print(1)").ok
    pod = fleet.pods[0]
    out = subprocess.run(
        [fleet.runsc, "--root", fleet.runsc_root, "exec", pod.pod_id, "/usr/bin/python3", "-c", SCRAPE],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    samples = {s.name: s for f in text_string_to_metric_families(out.stdout) for s in f.samples if not s.labels.get("process")}
    memory = {s.labels["process"]: s.value for f in text_string_to_metric_families(out.stdout) for s in f.samples
              if s.name == "warmfleet_executor_memory_bytes"}
    assert samples["warmfleet_slots"].value == 2
    assert samples["warmfleet_jobs_received_total"].value >= 1
    assert samples["warmfleet_job_duration_seconds_count"].value >= 1
    assert set(memory) == {"supervisor", "runner", "child"} and min(memory.values()) > 0  # psutil works under gVisor
