"""The recycle decision: pure logic over a pod snapshot."""

import statistics

from gc_sidecar.policy import Reason, age_limit, decide
from warmfleet.settings import RecyclePolicy
from warmfleet.contract.snapshot import PodSnapshot

NOW = 1_000_000.0


def snap(**kw):
    return PodSnapshot(**{"pod_id": "p1", "started_at": NOW - 10, "jobs_done": 0, "tainted": 0, "draining": False,
                          "ready": 2, "busy": 0, **kw})


def test_age_limit_has_jitter_below_the_maximum_and_spreads_a_fleet_started_together():
    policy = RecyclePolicy(max_age_s=100, age_jitter=0.2)
    limits = [age_limit(policy, f"pod-{i}", NOW) for i in range(200)]
    assert all(80 <= x <= 100 for x in limits)
    assert statistics.pstdev(limits) > 3  # not all together
    assert age_limit(policy, "pod-1", NOW) == age_limit(policy, "pod-1", NOW)  # stable per pod


def test_reasons_in_order_of_urgency():
    p = RecyclePolicy(max_age_s=5, age_jitter=0, max_jobs=10, max_memory_mb=100, recycle_tainted=True)
    assert decide(p, snap(), 10 << 20, NOW) == Reason.MAX_AGE
    assert decide(p, snap(started_at=NOW - 1), 10 << 20, NOW) is None
    assert decide(p, snap(jobs_done=10), 10 << 20, NOW) == Reason.MAX_JOBS
    assert decide(p, snap(jobs_done=10), 200 << 20, NOW) == Reason.MEMORY
    assert decide(p, snap(jobs_done=10, tainted=1), 200 << 20, NOW) == Reason.TAINTED
    assert decide(p, snap(tainted=1, draining=True), None, NOW) is None  # already leaving


def test_open_sessions_put_off_age_and_job_recycles_for_a_bounded_time():
    p = RecyclePolicy(max_age_s=5, age_jitter=0, max_jobs=10, max_memory_mb=100, recycle_tainted=True, session_wait_s=60)
    assert decide(p, snap(sessions_open=2), 10 << 20, NOW) is None  # due by age (10 s > 5 s), sessions open
    assert decide(p, snap(sessions_open=2, jobs_done=10), 10 << 20, NOW) is None
    assert decide(p, snap(sessions_open=2, started_at=NOW - 66), 10 << 20, NOW) == Reason.MAX_AGE  # waited 60 s past
    assert decide(p, snap(sessions_open=0), 10 << 20, NOW) == Reason.MAX_AGE  # they ended: at once
    assert decide(p, snap(sessions_open=2, tainted=1), 10 << 20, NOW) == Reason.TAINTED  # urgent: no wait
    assert decide(p, snap(sessions_open=2), 200 << 20, NOW) == Reason.MEMORY


def test_disabled_limits_never_fire():
    p = RecyclePolicy(max_age_s=0, max_jobs=0, max_memory_mb=0, recycle_tainted=False)
    assert decide(p, snap(started_at=0, jobs_done=10**9, tainted=5), 1 << 40, NOW) is None


def test_serving_slots_counts_ready_and_busy_of_pods_not_draining():
    assert PodSnapshot.from_dict({"pod_id": "p", "ready": 1, "busy": 2}).serving_slots == 3
    assert PodSnapshot.from_dict({"pod_id": "p", "ready": 1, "busy": 2, "draining": True}).serving_slots == 0
