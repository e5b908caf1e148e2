"""A Slot's handling of entries, in-process: a real redis-server (its stream, group,
result keys and reply channel) and a stand-in runner handle that answers as the real
runner does. No sandbox, no runner process: this checks what the slot decides."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis

from executor import store
from executor.delivery import Entry
from executor.pod_state import PodState
from executor.runner_handle import RunnerGone
from warmfleet.settings import ExecutorSettings
from executor.slot import Slot
from warmfleet.contract import keys, messages
from warmfleet.contract.messages import Chunk, Next, Ready, RunJob, RunOutcome, Stop
from warmfleet.contract.schema import Job, Result, Status
from warmfleet.contract.snapshot import SlotState

POOL = "default"


class StandInRunner:
    """Speaks the runner's side of warmfleet.contract.messages: Ready after start and after Next,
    a RunOutcome (after Chunks, for streaming jobs) for each RunJob. `die_on_job`: the
    next job's answer is a closed channel instead (the runner was killed mid-job)."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.exit_status: int | None = None
        self.starts = 0
        self.jobs: list[RunJob] = []
        self.die_on_job = False
        self.silent_on_job = False
        self._replies: asyncio.Queue = asyncio.Queue()

    async def start(self) -> None:
        self.starts += 1
        self.pid = 40000 + self.starts
        self._replies.put_nowait(Ready())

    async def send(self, msg: messages.Message) -> None:
        if isinstance(msg, RunJob):
            self.jobs.append(msg)
            if self.die_on_job:
                self.die_on_job = False
                self._replies.put_nowait(RunnerGone("channel closed"))
                return
            if self.silent_on_job:  # stuck: never answers, never closes its channel
                self.silent_on_job = False
                return
            if msg.stream:
                self._replies.put_nowait(Chunk(stream="stdout", data="partial\n"))
            self._replies.put_nowait(RunOutcome(status=Status.OK.value, exit_code=0, stdout=f"ran {msg.code}\n"))
        elif isinstance(msg, Next):
            self._replies.put_nowait(Ready())

    async def recv(self) -> messages.Message:
        reply = await self._replies.get()
        if isinstance(reply, Exception):
            raise reply
        return reply

    def signal(self, sig: int) -> None:
        pass

    def kill(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
async def pod(redis_url):
    settings = ExecutorSettings(
        redis_url=redis_url, pod_id="pod-t", slots=1, drop_privileges=False, metrics_port=0, block_ms=50,
        max_deliveries=2, reclaim_idle_s=30,
    )
    r = aioredis.from_url(redis_url, decode_responses=True)
    await store.ensure_group(r, POOL)
    state = PodState(settings, r, store.ResultStore(r, POOL, settings.result_ttl_s))
    yield state
    await r.aclose()


@pytest.fixture
async def slot(pod):
    s = Slot(pod, 0)
    s.runner = StandInRunner()  # type: ignore[assignment]
    await s.start_runner()
    yield s


async def _enqueue(r, job: Job | None = None, raw: str | None = None) -> None:
    await r.xadd(keys.stream(POOL), {"job": raw if raw is not None else job.to_json()})


async def _next(slot: Slot) -> Entry:
    entries = await slot.source.next()
    assert len(entries) == 1
    return entries[0]


async def _settled(slot: Slot) -> None:
    """Until the slot's runner has its next spare (the slot starts that after answering)."""
    await asyncio.wait_for(slot._ready.wait(), 10)


def _job(job_id: str = "j1", **kw) -> Job:
    return Job(job_id=job_id, code="print(1)", reply_to=keys.reply_channel(POOL, "c1"), **kw)


async def test_a_job_is_run_stored_published_and_acknowledged(pod, slot):
    r = pod.redis
    sub = r.pubsub()
    await sub.subscribe(keys.reply_channel(POOL, "c1"))
    await _enqueue(r, _job(timeout=7.0, files={"a.txt": "eA=="}))
    await slot._handle(await _next(slot))
    await _settled(slot)

    sent = slot.runner.jobs[0]
    assert (sent.code, sent.timeout, sent.files, sent.stream) == ("print(1)", 7.0, {"a.txt": "eA=="}, False)
    stored = Result.from_json(await r.get(keys.result(POOL, "j1")))
    assert (stored.status, stored.stdout, stored.executor) == (Status.OK, "ran print(1)\n", "pod-t/0")
    published = None
    while published is None or published["type"] != "message":
        published = await sub.get_message(timeout=5)
    assert Result.from_json(published["data"]) == stored
    assert await r.xlen(keys.stream(POOL)) == 0  # acknowledged and deleted
    assert (pod.jobs_done, slot.jobs_done, slot.state) == (1, 1, SlotState.READY)
    await sub.aclose()


async def test_an_entry_without_a_job_id_is_dead_lettered_without_running(pod, slot):
    await _enqueue(pod.redis, raw="not json")
    await slot._handle(await _next(slot))
    dead = await pod.redis.xrange(keys.dead_letters(POOL))
    assert len(dead) == 1 and "malformed" in dead[0][1]["reason"]
    assert slot.runner.jobs == [] and await pod.redis.xlen(keys.stream(POOL)) == 0


async def test_an_invalid_job_is_answered_rejected_without_running(pod, slot):
    await _enqueue(pod.redis, raw=json.dumps({"job_id": "bad1", "code": "x", "timeout": -1}))
    await slot._handle(await _next(slot))
    stored = Result.from_json(await pod.redis.get(keys.result(POOL, "bad1")))
    assert stored.status is Status.REJECTED and "timeout" in stored.error
    assert slot.runner.jobs == []


async def test_a_runner_dying_mid_job_leaves_the_entry_pending_and_it_runs_again(pod, slot):
    slot.runner.die_on_job = True
    await _enqueue(pod.redis, _job("j2"))
    await slot._handle(await _next(slot))
    assert await pod.redis.get(keys.result(POOL, "j2")) is None
    assert slot.runner.starts == 2  # restarted
    entry = await _next(slot)  # its own pending list first
    assert entry.redelivered
    await slot._handle(entry)
    await _settled(slot)
    assert Result.from_json(await pod.redis.get(keys.result(POOL, "j2"))).status is Status.OK
    assert len(slot.runner.jobs) == 2 and await pod.redis.xlen(keys.stream(POOL)) == 0


async def test_a_runner_silent_past_the_jobs_timeout_is_restarted_and_the_job_runs_again(pod, slot):
    slot.settings.runner_silence_s = 0.2
    slot.runner.silent_on_job = True
    await _enqueue(pod.redis, _job("j3", timeout=1))
    await asyncio.wait_for(slot._handle(await _next(slot)), 30)  # 1 + grace + 0.2 s, not for ever
    assert await pod.redis.get(keys.result(POOL, "j3")) is None
    assert slot.runner.starts == 2  # the stuck runner was replaced
    entry = await _next(slot)  # still pending: read again from its own list
    assert entry.redelivered
    await slot._handle(entry)
    await _settled(slot)
    assert Result.from_json(await pod.redis.get(keys.result(POOL, "j3"))).status is Status.OK


async def test_a_redelivery_whose_result_exists_is_acknowledged_without_running(pod, slot):
    r = pod.redis
    await r.set(keys.result(POOL, "j3"), Result(job_id="j3", status=Status.OK).to_json())
    await _enqueue(r, _job("j3"))
    entry = await _next(slot)
    await slot._handle(Entry(entry.entry_id, entry.fields, redelivered=True))
    assert slot.runner.jobs == [] and await r.xlen(keys.stream(POOL)) == 0


async def test_a_job_delivered_too_often_fails_and_is_dead_lettered(pod, slot):
    r = pod.redis
    await _enqueue(r, _job("j4"))
    for consumer in ("other/0", "other/1"):  # two earlier deliveries that never answered
        await r.xreadgroup(keys.CONSUMER_GROUP, consumer, {keys.stream(POOL): "0" if consumer == "other/1" else ">"})
        await r.xclaim(keys.stream(POOL), keys.CONSUMER_GROUP, consumer, 0, [(await r.xrange(keys.stream(POOL)))[0][0]])
    (entry_id, fields), = await r.xrange(keys.stream(POOL))
    await r.xclaim(keys.stream(POOL), keys.CONSUMER_GROUP, slot.consumer, 0, [entry_id])
    await slot._handle(Entry(entry_id, fields, redelivered=True))
    stored = Result.from_json(await r.get(keys.result(POOL, "j4")))
    assert stored.status is Status.FAILED and "deliveries" in stored.error
    assert slot.runner.jobs == [] and pod.dead_letters == 1
    assert [f["job_id"] for _, f in await r.xrange(keys.dead_letters(POOL))] == ["j4"]


async def test_a_streaming_job_writes_its_chunks_then_the_end_record(pod, slot):
    await _enqueue(pod.redis, _job("j5", stream=True))
    await slot._handle(await _next(slot))
    await _settled(slot)
    records = [fields for _, fields in await pod.redis.xrange(keys.output(POOL, "j5"))]
    assert records == [messages.chunk_record(Chunk(stream="stdout", data="partial\n")), messages.END_RECORD]
    assert [messages.read_record(f) for f in records] == [("stdout", "partial\n"), None]


async def test_stop_tells_the_runner_to_stop(pod, slot):
    sent = []
    slot.runner.send = lambda msg: _record(sent, msg)  # type: ignore[method-assign]
    await slot.stop()
    assert sent == [Stop()] and slot.state is SlotState.STOPPED


async def _record(sent: list, msg: messages.Message) -> None:
    sent.append(msg)


async def test_a_traced_job_continues_the_clients_trace_through_queue_run_and_store(pod, slot, redis_url):
    """With the SDK's in-memory exporter: the controller's span > warmfleet.submit (client)
    > warmfleet.job (executor) > queue_wait, run, store, all in the trace the client started."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from dispatcher import AsyncClient
    from warmfleet.plumbing import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        async with AsyncClient(redis_url) as ac:
            with provider.get_tracer("controller").start_as_current_span("controller.request") as request_span:
                job_id = await ac.submit("print(1)")
            await slot._handle(await _next(slot))
            assert (await ac.wait(job_id, timeout=10)).status is Status.OK
        await _settled(slot)
    finally:
        tracing.use(None)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"controller.request", "warmfleet.submit", "warmfleet.job", "warmfleet.queue_wait",
                          "warmfleet.run", "warmfleet.store"}
    trace_id = request_span.get_span_context().trace_id
    assert {s.context.trace_id for s in spans.values()} == {trace_id}
    parent = {name: s.parent.span_id if s.parent else None for name, s in spans.items()}
    assert parent["warmfleet.submit"] == spans["controller.request"].context.span_id
    assert parent["warmfleet.job"] == spans["warmfleet.submit"].context.span_id  # across Redis
    assert spans["warmfleet.job"].parent.is_remote
    for child in ("warmfleet.queue_wait", "warmfleet.run", "warmfleet.store"):
        assert parent[child] == spans["warmfleet.job"].context.span_id
    job = spans["warmfleet.job"]
    assert job.attributes["warmfleet.job_id"] == job_id and job.attributes["warmfleet.cli.status"] == "ok"
    assert job.start_time <= spans["warmfleet.queue_wait"].end_time <= spans["warmfleet.run"].start_time
    assert spans["warmfleet.run"].end_time <= spans["warmfleet.store"].start_time <= job.end_time


def test_an_untraced_executor_imports_no_opentelemetry():
    """Tracing off (no OTEL_TRACES_EXPORTER): the pod's supervisor pays no import for it."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    # (redis-py itself peeks at the opentelemetry namespace for its own optional metrics)
    code = ("import sys, executor.__main__, executor.supervisor, executor.slot; from warmfleet.plumbing import tracing; "
            "assert not tracing.configure_from_env(); "
            "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.trace', 'opentelemetry.sdk.trace',"
            " 'opentelemetry.propagat', 'warmfleet.plumbing.tracing_otel'))))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
