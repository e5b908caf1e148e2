"""One slot: a consumer in the pool's group, feeding one runner process.

It reads only when its runner has a spare child ready, one entry at a time, so the
lag KEDA sees is the real backlog. It reads its own pending entries first (after a
start or a runner crash), then new ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import redis.exceptions
from pydantic import ValidationError

from executor.egress import usage as egress_usage
from executor import metrics
from executor.boot import SpawnedRunner, runner_config
from executor.delivery import Entry, EntrySource
from executor.pod_state import PodState
from executor.runner_handle import RunnerGone, RunnerHandle
from warmfleet.contract import messages
from warmfleet.plumbing import tracing
from warmfleet.contract.messages import Broken, Chunk, Next, Ready, RunJob, RunOutcome, Stop
from warmfleet.contract.schema import JOB_ID_RE, FleetLimits, Job, JobError, Result, Status, explain
from warmfleet.contract.snapshot import SlotState

log = logging.getLogger("warmfleet.slot")


class Slot:
    def __init__(self, pod: PodState, index: int, spawned: SpawnedRunner | None = None) -> None:
        self.pod = pod
        self.index = index
        self.settings = pod.settings
        self.consumer = f"{self.settings.pod_id}/{index}"
        self.name = self.consumer
        self.state = SlotState.STARTING
        self.jobs_done = 0
        self.runner = RunnerHandle(self.settings.python, runner_config(self.settings, index), spawned)
        self.source = EntrySource(
            pod.redis,
            self.settings.pool,
            self.consumer,
            block_ms=self.settings.block_ms,
            reclaim_idle_s=self.settings.reclaim_idle_s,
        )
        self._ready = asyncio.Event()  # set while the runner has a spare child waiting
        self._ready.set()

    def _set(self, state: SlotState) -> None:
        if state is self.state:
            return
        # ready <-> busy flips on every job and leaves the serving count alone: it is
        # published within FLIP_PUBLISH_S, not at once (a beat per flip put a file write and
        # two Redis round trips inside the very job that flipped the slot).
        flip = {state, self.state} == {SlotState.READY, SlotState.BUSY}
        self.state = state
        if flip:
            self.pod.slots_flipped = True
        else:
            self.pod.state_changed.set()

    async def start_runner(self) -> None:
        """(Re)start the runner and wait for its first spare child."""
        delay = 0.05
        while True:
            self._set(SlotState.STARTING)
            try:
                await self.runner.start()
                self.pod.runner_pids[self.runner.pid] = self.runner
                await self._await_ready()
                self._set(SlotState.READY)
                return
            except RunnerGone as exc:
                self._set(SlotState.BROKEN)
                log.error("runner failed to start", extra={"slot": self.name, "error": str(exc)})
                self.runner.kill()
                self.runner.close()
                if self.pod.stopping.is_set():
                    return
                await asyncio.sleep(delay)  # backoff before a respawn, not synchronisation
                delay = min(delay * 2, 5.0)

    async def _await_ready(self) -> None:
        msg = await self.runner.recv()
        if not isinstance(msg, Ready):
            raise RunnerGone(msg.error if isinstance(msg, Broken) else f"runner said {msg!r}")

    async def run(self) -> None:
        """Consume until the supervisor drains."""
        await self.start_runner()
        backoff = 0.1
        while not self.pod.draining.is_set():
            await self._ready.wait()
            if self.pod.draining.is_set():
                break
            try:
                entries = await self.source.next()
                backoff = 0.1
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("redis unavailable; retrying", extra={"slot": self.name, "error": str(exc)})
                await self.pod.wait_draining(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for entry in entries:
                await self._handle(entry)
        self._set(SlotState.STOPPED)

    async def _handle(self, entry: Entry) -> None:
        t_received = time.perf_counter()
        entry_id, fields = entry.entry_id, entry.fields
        store = self.pod.store
        metrics.JOBS_RECEIVED.labels(self.settings.pool).inc()
        if not fields:  # deleted while pending: nothing to run, nobody to answer
            await store.ack_only(entry_id)
            return
        job, problem = parse_entry(fields, self.pod.settings.limits)
        if job is None:
            job_id = _salvage_job_id(fields)
            if job_id is None:
                log.warning("dead-lettered malformed entry", extra={"entry_id": entry_id, "reason": problem})
                await store.dead_letter(entry_id, fields, problem)
                metrics.DEAD_LETTERS.labels(self.settings.pool, "malformed").inc()
                return
            result = Result(job_id=job_id, status=Status.REJECTED, error=problem, executor=self.name)
            await store.store_and_ack(entry_id, result, _salvage_reply_to(fields))
            metrics.job_finished(self.settings.pool, result)
            log.info("job rejected", extra={"job_id": job_id, "reason": problem})
            return
        # Only a redelivery (own pending list, reclaim) can find its result already stored;
        # a fresh entry skips the round trip.
        if entry.redelivered and await store.exists(job.job_id):
            await store.ack_only(entry_id)
            log.info("duplicate delivery skipped", extra={"job_id": job.job_id})
            return
        if entry.redelivered and await self.source.delivery_count(entry_id) > self.settings.max_deliveries:
            result = Result(
                job_id=job.job_id,
                status=Status.FAILED,
                executor=self.name,
                error=f"gave up after {self.settings.max_deliveries} deliveries: the job kept killing its executor",
            )
            await store.record_dead_letter(entry_id, result.error or "", job_id=job.job_id)
            await store.store_and_ack(entry_id, result, job.reply_to)
            self.pod.dead_letters += 1
            metrics.DEAD_LETTERS.labels(self.settings.pool, "max_deliveries").inc()
            metrics.job_finished(self.settings.pool, result)
            log.error("job dead-lettered", extra={"job_id": job.job_id})
            return
        t_parsed = time.perf_counter()
        spans = tracing.for_job(job.trace, entry_id, {"warmfleet.job_id": job.job_id, "warmfleet.executor": self.name})
        async with self.source.keep_claim(entry_id):
            with spans.phase("run"):
                result = await self._execute(job, entry.redelivered)
        if result is None:
            spans.end("runner_died")
            return  # runner died mid-job: the entry stays pending and is read again
        t_ran = time.perf_counter()
        try:
            with spans.phase("store"):
                if not await self._store(entry_id, result, job.reply_to):
                    self.pod.duplicates += 1
                    log.info("result already stored by an earlier delivery", extra={"job_id": job.job_id})
            if job.stream:
                await self.pod.store.add_output(job.job_id, messages.END_RECORD)
        finally:
            spans.end(result.status.value)
            # Only now may the runner fork the next spare: inside gVisor a fork holds up the
            # pod's other work for ~10 ms, and the answer should not wait behind it.
            self._spare_task = asyncio.get_running_loop().create_task(self._next_spare())
        t_stored = time.perf_counter()
        metrics.job_finished(self.settings.pool, result)
        self.jobs_done += 1
        self.pod.note_result(result)
        log.info(
            "job done",
            extra={
                "job_id": job.job_id,
                "status": result.status.value,
                "duration_s": result.duration_s,
                "code_bytes": len(job.code),
                "stdout_bytes": len(result.stdout),
                "stderr_bytes": len(result.stderr),
                "run_ms": round((t_ran - t_parsed) * 1000, 2),
                "store_ms": round((t_stored - t_ran) * 1000, 2),
                "received_ms": round((t_parsed - t_received) * 1000, 2),
            },
        )

    async def _store(self, entry_id: str, result: Result, reply_to: str | None) -> bool:
        """Store, publish, ack. A job's result is precious: retry through a Redis outage."""
        backoff = 0.1
        started = time.monotonic()
        while True:
            try:
                return await self.pod.store.store_and_ack(entry_id, result, reply_to)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                level = logging.ERROR if time.monotonic() - started > 30 else logging.WARNING
                log.log(level, "cannot store result; retrying", extra={"job_id": result.job_id, "error": str(exc)})
                if self.pod.stopping.is_set():
                    return False
                await asyncio.sleep(backoff)  # reconnect backoff
                backoff = min(backoff * 2, 2.0)

    async def _execute(self, job: Job, redelivered: bool = False) -> Result | None:
        self._set(SlotState.BUSY)
        started = time.time()
        try:
            if job.stream and redelivered:
                await self.pod.store.add_output(job.job_id, messages.RESTART_RECORD)
            await self.runner.send(run_job(job, egress_usage.job_pass(self.settings, job.job_id)))
            silence_s = job.timeout + self.settings.kill_grace_s + self.settings.runner_silence_s
            reply = await self._recv_within(silence_s)
            while isinstance(reply, Chunk):  # a streaming job's output, as it is written
                await self.pod.store.add_output(job.job_id, messages.chunk_record(reply))
                reply = await self._recv_within(silence_s)
            if not isinstance(reply, RunOutcome):
                raise RunnerGone(f"expected a result, got {reply!r}")
        except RunnerGone as exc:
            log.error("runner died mid-job", extra={"slot": self.name, "job_id": job.job_id, "error": str(exc)})
            await self._restart_runner()
            return None
        result = Result(
            job_id=job.job_id,
            executor=self.name,
            queue_wait_s=round(max(0.0, started - job.submitted_at), 6),
            egress=await egress_usage.collect(self.settings, job.job_id),
            **reply.as_dict(),
        )
        self._ready.clear()  # until the runner's next spare is up: _handle starts _next_spare
        return result

    async def _recv_within(self, seconds: float) -> messages.Message:
        """The runner's next message; silence far past the job's wall clock means it is
        stuck, and it is treated as dead (killed, restarted, the entry read again)."""
        try:
            return await asyncio.wait_for(self.runner.recv(), seconds)
        except TimeoutError:
            raise RunnerGone(f"runner silent for {seconds:.1f} s, past the job's timeout and grace") from None

    async def _next_spare(self) -> None:
        try:
            await self.runner.send(Next())
            await self._await_ready()
            self._set(SlotState.READY)
        except RunnerGone as exc:
            log.error("runner lost after a job", extra={"slot": self.name, "error": str(exc)})
            await self._restart_runner()
        finally:
            self._ready.set()

    async def _restart_runner(self) -> None:
        metrics.RUNNER_RESTARTS.labels(self.settings.pool).inc()
        self.runner.kill()
        self.runner.close()
        self.source.reread_pending()
        await self.start_runner()

    async def stop(self) -> None:
        if self.runner.pid is None:
            return
        try:
            await self.runner.send(Stop())
        except RunnerGone:
            pass
        self.runner.close()
        self._set(SlotState.STOPPED)


EXECUTOR_FIELDS = ("egress",)  # RunJob fields the executor sets, not copied from the Job


def run_job(job: Job, egress: dict | None = None) -> RunJob:
    """The message for the runner: the Job's fields the executor acts on, copied by name."""
    copied = {name: getattr(job, name) for name in RunJob.fields() if name not in EXECUTOR_FIELDS}
    return RunJob(**copied, egress=egress)


def parse_entry(fields: dict, limits: FleetLimits) -> tuple[Job | None, str]:
    raw = fields.get("job")
    if raw is None:
        return None, "entry has no 'job' field"
    if len(raw) > limits.max_code_bytes * 6 + limits.max_input_bytes * 2 + 65536:
        return None, f"job field is {len(raw)} bytes, over the fleet's maximum"
    try:
        job = Job.from_json(raw)
    except ValidationError as exc:
        return None, f"malformed job: {explain(exc)}"
    try:
        job.check(limits)
    except JobError as exc:
        return None, str(exc)
    return job, ""


def _salvage_json(fields: dict) -> dict:
    try:
        data = json.loads(fields.get("job", ""))
        return data if isinstance(data, dict) else {}
    except (ValueError, TypeError):
        return {}


def _salvage_job_id(fields: dict) -> str | None:
    job_id = _salvage_json(fields).get("job_id")
    return job_id if isinstance(job_id, str) and JOB_ID_RE.match(job_id) else None


def _salvage_reply_to(fields: dict) -> str | None:
    reply = _salvage_json(fields).get("reply_to")
    return reply if isinstance(reply, str) else None
