"""Faults: a slot killed mid-job, a job that keeps killing its executor, a whole
sandbox killed, SIGTERM mid-job. Every job gets exactly one result, published once (a
subscriber of our own counts), and runs again only as often as what ran it died
(support/answers.py)."""

import time

import pytest
import redis

from dispatcher import Client
from support import answers
from support import fleet_faults as ff
from warmfleet.contract import keys
from warmfleet.local.fleet import LocalFleet
from warmfleet.settings import FleetSettings
from warmfleet.contract.schema import Status

RECLAIM_IDLE_S = "2"
MAX_DELIVERIES = 3


@pytest.fixture(scope="module")
def faulty_fleet():
    with ff.env(WARMFLEET_RECLAIM_IDLE_S=RECLAIM_IDLE_S, WARMFLEET_MAX_DELIVERIES=str(MAX_DELIVERIES)):
        f = LocalFleet(FleetSettings(pods=2, slots=1, drain_timeout_s=15, monitor_s=0.2))
        f.start(ready_timeout=60)
    yield f
    f.stop()


@pytest.fixture
def r(faulty_fleet):
    conn = redis.Redis.from_url(faulty_fleet.client_url, decode_responses=True)
    yield conn
    conn.close()


@pytest.fixture
def c(faulty_fleet):
    faulty_fleet.wait_ready(2, 60)  # every test starts with the whole fleet serving
    with Client(faulty_fleet.client_url) as client:
        yield client


@pytest.fixture(scope="module")
def published(faulty_fleet):
    with answers.PublishedResults(faulty_fleet.client_url) as p:
        yield p


def answered_once(published, job_id: str) -> None:
    """The client got its result; our own subscriber saw it published exactly once."""
    ff.poll(lambda: published.counts[job_id] >= 1, 10, "our subscriber to see the result")
    published.settle()  # a second publish, if any, has been counted too
    assert published.counts[job_id] == 1, published.counts[job_id]


def runs_of(fleet, job_id: str, at_least: int) -> int:
    """How many times the pods logged running the job (done, or cut short by its runner's
    death); waits for `at_least` (the log line follows the stored result)."""
    logs = answers.fleet_logs(fleet)
    return ff.poll(lambda: (n := answers.runs_by_job(logs)[job_id]) >= at_least and n, 10, f"{at_least} logged runs")


def test_runner_killed_mid_job_is_rerun_and_answered_once(faulty_fleet, r, c, published):
    job = c.submit(ff.held_job("done"))
    pod_id, slot = ff.poll(lambda: ff.busy_slot(r), 20, "the job to start")
    ff.kill_in_sandbox(faulty_fleet, pod_id, slot.runner_pid)
    # pids are per sandbox: a new runner is another pod, or another pid in the same pod
    again = ff.poll(lambda: (b := ff.busy_slot(r)) and (b[0], b[1].runner_pid) != (pod_id, slot.runner_pid) and b,
                    30, "the rerun")
    ff.release(faulty_fleet, again[0], again[1].slot)
    res = c.wait(job, timeout=60)
    assert (res.status, res.stdout) == (Status.OK, "done\n"), res
    answered_once(published, job)
    assert runs_of(faulty_fleet, job, 2) == 2  # one kill, one re-run


def test_job_that_keeps_killing_its_executor_is_dead_lettered(faulty_fleet, r, c, published):
    job = c.submit("import time; time.sleep(30)", timeout=60)
    kills = 0
    while kills < 6:
        found = ff.poll(lambda: ff.busy_slot(r) or r.exists(keys.result("default", job)), 30, "the job to run again")
        if found == 1:
            break  # the result exists: the fleet gave up
        pod_id, slot = found
        ff.kill_in_sandbox(faulty_fleet, pod_id, slot.runner_pid)
        kills += 1
        ff.poll(lambda: getattr((ff.busy_slot(r) or (None, None))[1], "runner_pid", None) != slot.runner_pid, 10, "the kill")
    res = c.wait(job, timeout=30)
    assert res.status is Status.FAILED, res
    assert "deliveries" in res.error
    dead = [fields for _, fields in r.xrange(keys.dead_letters("default"))]
    assert any(d["job_id"] == job and "deliveries" in d["reason"] for d in dead)  # operators see it too
    assert 3 <= kills <= 4
    answered_once(published, job)
    # every run was one the test killed, and the fleet stopped at WARMFLEET_MAX_DELIVERIES
    assert runs_of(faulty_fleet, job, MAX_DELIVERIES) == MAX_DELIVERIES
    assert c.run("print('next')").stdout == "next\n"


def test_whole_sandbox_killed_its_job_is_reclaimed(faulty_fleet, r, c, published):
    job = c.submit(ff.held_job("survived"))
    pod_id, _ = ff.poll(lambda: ff.busy_slot(r), 20, "the job to start")
    ff.pod_by_id(faulty_fleet, pod_id).sandbox.signal("KILL")
    # reclaimed by the other pod after ~2 s idle
    other, slot = ff.poll(lambda: ff.busy_slot_except(r, pod_id), 60, "the job to be reclaimed")
    ff.release(faulty_fleet, other, slot.slot)
    res = c.wait(job, timeout=60)
    assert (res.status, res.stdout) == (Status.OK, "survived\n"), res
    assert not res.executor.startswith(pod_id)
    answered_once(published, job)
    assert runs_of(faulty_fleet, job, 1) == 1  # the run in the killed sandbox left no line: one logged run
    faulty_fleet.wait_ready(2, 60)  # the monitor replaced the dead pod
    assert faulty_fleet.restarts >= 1


def test_a_job_longer_than_the_reclaim_idle_time_keeps_its_claim(faulty_fleet, r, c, published):
    """The running slot refreshes its claim (XCLAIM JUSTID) every third of the reclaim
    idle time: well past that time the entry is still idle for less than it, still with
    its first consumer and delivery, so no peer can reclaim it."""
    stream, group = keys.stream("default"), keys.CONSUMER_GROUP
    job = c.submit(ff.held_job("once"))  # held well past the 2 s idle time
    first = ff.poll(lambda: r.xpending_range(stream, group, min="-", max="+", count=10), 20, "the entry to be read")
    assert len(first) == 1, first
    seen = time.monotonic()
    later = ff.poll(
        lambda: time.monotonic() - seen > 1.5 * float(RECLAIM_IDLE_S)
        and r.xpending_range(stream, group, min=first[0]["message_id"], max=first[0]["message_id"], count=1),
        20, "1.5x the reclaim idle time",
    )
    assert later[0]["consumer"] == first[0]["consumer"]
    assert later[0]["times_delivered"] == 1
    assert later[0]["time_since_delivered"] < float(RECLAIM_IDLE_S) * 1000
    pod_id, slot = ff.poll(lambda: ff.busy_slot(r), 20, "the job to be running")
    ff.release(faulty_fleet, pod_id, slot.slot)
    res = c.wait(job, timeout=60)
    assert (res.status, res.stdout) == (Status.OK, "once\n"), res
    answered_once(published, job)
    assert runs_of(faulty_fleet, job, 1) == 1


def test_sigterm_drains_in_flight_job_then_exits(faulty_fleet, r, c, published):
    job = c.submit(ff.held_job("finished"))
    pod_id, slot = ff.poll(lambda: ff.busy_slot(r), 20, "the job to start")
    pod = ff.pod_by_id(faulty_fleet, pod_id)
    pod.sandbox.signal("TERM")
    ff.poll(lambda: getattr(ff.snapshots(r).get(pod_id), "draining", False), 10, "the pod to drain")
    ff.release(faulty_fleet, pod_id, slot.slot)  # only now, mid-drain, may the job finish
    res = c.wait(job, timeout=30)
    assert (res.status, res.stdout) == (Status.OK, "finished\n"), res
    assert res.executor.startswith(pod_id)  # finished where it ran: not reclaimed
    answered_once(published, job)
    assert runs_of(faulty_fleet, job, 1) == 1
    assert pod.sandbox.wait_stopped(20)
    # It left nothing pending behind, and removed its consumer.
    consumers = {x["name"] for x in r.xinfo_consumers(keys.stream("default"), keys.CONSUMER_GROUP)}
    assert not any(name.startswith(pod_id) for name in consumers)


def test_second_sigterm_kills_now_and_the_job_is_reclaimed(faulty_fleet, r, c, published):
    job = c.submit(ff.held_job("second try"), timeout=60)
    pod_id, _ = ff.poll(lambda: ff.busy_slot(r), 20, "the job to start")
    pod = ff.pod_by_id(faulty_fleet, pod_id)
    pod.sandbox.signal("TERM")
    ff.poll(lambda: getattr(ff.snapshots(r).get(pod_id), "draining", False), 10, "the pod to drain")
    pod.sandbox.signal("TERM")
    assert pod.sandbox.wait_stopped(5)  # did not wait for the held job
    # its entry stayed pending and another pod took it over
    other, slot = ff.poll(lambda: ff.busy_slot_except(r, pod_id), 60, "the job to be reclaimed")
    ff.release(faulty_fleet, other, slot.slot)
    res = c.wait(job, timeout=60)
    assert (res.status, res.stdout) == (Status.OK, "second try\n"), res
    assert not res.executor.startswith(pod_id)
    answered_once(published, job)
    assert runs_of(faulty_fleet, job, 1) <= 2  # the killed run may have logged its runner's death
