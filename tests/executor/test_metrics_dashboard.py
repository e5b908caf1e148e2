"""The example Grafana dashboard only queries metrics the executor really exports."""

from __future__ import annotations

import json
import os
import re
from types import SimpleNamespace

from executor import metrics
from warmfleet.contract.snapshot import PodSnapshot

DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "k8s", "dashboards", "warmfleet.json")


def _exported_names() -> set[str]:
    sup = SimpleNamespace(
        settings=SimpleNamespace(pool="default"),
        runner_pids={},
        orphans_reaped=0,
        snapshot=lambda: PodSnapshot(pod_id="p", slots=2, ready=2, busy=0, broken=0, draining=False, reclaimed=0, duplicates=0),
    )
    from gc_sidecar import recycler  # the sidecar exports the recycle counters

    families = [*metrics.REGISTRY.collect(), *metrics.SupervisorCollector(sup).collect(), *recycler.REGISTRY.collect()]
    names = set()
    for f in families:
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(f.type, [""])
        names.update(f.name + s for s in suffixes)
    return names


def test_every_dashboard_query_names_an_exported_metric():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bwarmfleet_[a-z_]+", e)}
    exported = _exported_names()
    assert len(used) >= 15
    assert used <= exported, sorted(used - exported)
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])


def test_supervisor_collector_reports_slots_and_memory():
    sup = SimpleNamespace(
        settings=SimpleNamespace(pool="p1"), runner_pids={}, orphans_reaped=3,
        snapshot=lambda: PodSnapshot(pod_id="p", slots=4, ready=1, busy=3, broken=0, draining=True, reclaimed=5, duplicates=1),
    )
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in metrics.SupervisorCollector(sup).collect() for s in f.samples}
    assert samples[("warmfleet_slots_busy", (("pool", "p1"),))] == 3
    assert samples[("warmfleet_draining", (("pool", "p1"),))] == 1
    assert samples[("warmfleet_reclaims_total", (("pool", "p1"),))] == 5
    assert samples[("warmfleet_orphans_reaped_total", (("pool", "p1"),))] == 3
    assert samples[("warmfleet_executor_memory_bytes", (("pool", "p1"), ("process", "supervisor")))] > 1 << 20
