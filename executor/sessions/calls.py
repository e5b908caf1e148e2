"""One session's calls on its pod, in order: each call read from the session's stream
(deduplicated by its id), sent to the session's process under its budgets, its Result
stored SET NX and published to the caller in one script, the call entry dropped. A call
that cost the session its process ends the session with the reason."""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from executor import metrics, store
from executor.lean.verdict import STATUS_OF
from executor.sessions.handle import CallNotStopped, SessionBroke, SessionDied, call_verdict
from executor.sessions.state import Session
from executor.sessions.stream import CallOutput
from warmfleet.contract import keys
from warmfleet.contract import lua
from warmfleet.contract.messages import Call, RunOutcome
from warmfleet.contract.schema import EgressReport, Result, Status, check_env
from warmfleet.contract.sessions import CLOSE_FIELD, SessionCall

log = logging.getLogger("warmfleet.sessions")

SEEN_CALLS = 256  # call ids remembered per session for deduplication
_STORE_CALL = lua.script("session_call_store")  # warmfleet/contract/lua/session_call_store.lua


def session_run(call: SessionCall) -> Call:
    """The message for the session process: the call's fields it acts on, copied by name
    (as the slot's run_job copies a Job's)."""
    return Call(**{name: getattr(call, name) for name in Call.fields() if name in SessionCall.model_fields})


class Host(Protocol):
    """What calls need of the pod's SessionHost (executor/sessions/host.py), named here so the
    two modules do not import each other."""

    settings: Any  # ExecutorSettings
    redis: Any
    pool: str
    consumer: str

    async def end(self, session: Session, reason: str, worker: bool = False) -> None: ...


class CallServer:
    def __init__(self, host: Host) -> None:
        self.host = host
        self._store_call = host.redis.register_script(_STORE_CALL)

    async def serve(self, session: Session) -> None:
        calls_key = keys.session_calls(self.host.pool, session.id)
        while not session.ending:
            entry_id, fields = await session.queue.get()
            if CLOSE_FIELD in fields:
                await self.host.end(session, "closed", worker=True)
                return
            try:
                call = SessionCall.from_entry(fields)
                check_env(call.env)
            except (ValueError, KeyError) as exc:
                log.warning("malformed session call rejected", extra={"session_id": session.id, "error": str(exc)})
                await self._reject(fields, f"malformed session call: {exc!r}", calls_key, entry_id, session)
                continue
            call_id, reply_to = call.call_id, call.reply_to or session.reply_to
            # Delivered twice (a client retried its XADD): it ran once. Only this pod reads
            # the session's stream, so remembering recent ids suffices; the result's SET NX
            # keeps the first answer even past them. No EXISTS round trip per call.
            if call_id in session.seen:
                await self.host.redis.xdel(calls_key, entry_id)
                continue
            session.seen[call_id] = None
            if len(session.seen) > SEEN_CALLS:
                session.seen.popitem(last=False)
            t_start = time.perf_counter()
            output = CallOutput(self.host.redis, self.host.pool, call_id, self.host.settings.result_ttl_s) \
                if call.stream else None
            session.current_call = call_id
            if call_id in session.stops:  # stopped before it started: it runs, and is stopped at once
                session.proc.stop_requested.set()
            if output is not None:
                output.start()
                session.proc.on_output = output.write
            try:
                result, end_reason = await self._call(session, call)
            finally:
                session.proc.on_output = None
                session.proc.stop_requested.clear()
                session.current_call = None
                session.stops.discard(call_id)
            t_ran = time.perf_counter()
            store_keys = [keys.result(self.host.pool, call_id), calls_key]
            store_args = [result.to_json(), self.host.settings.result_ttl_s,
                          store.reply_channel(self.host.pool, reply_to), entry_id]
            if output is None:
                await self._store_call(keys=store_keys, args=store_args)
            else:  # its last output and end marker, then the result, in one round trip
                await output.finish(lambda pipe: self._store_call(keys=store_keys, args=store_args, client=pipe))
            metrics.SESSION_CALLS.labels(self.host.pool, result.status.value).inc()
            log.debug("session call done", extra={
                "session_id": session.id, "call_id": call_id, "status": result.status.value,
                "run_ms": round((t_ran - t_start) * 1000, 2), "store_ms": round((time.perf_counter() - t_ran) * 1000, 2),
            })
            if end_reason:
                await self.host.end(session, end_reason, worker=True)
                return
            if time.monotonic() - session.started > session.max_lifetime:
                await self.host.end(session, "max_lifetime", worker=True)
                return

    async def _reject(self, fields: dict, why: str, calls_key: str, entry_id: str, session: Session) -> None:
        """Drop a call that cannot run; answer it REJECTED if it names an id to answer to
        (a client other than ours wrote it: it must not wait for ever)."""
        call_id, reply_to = SessionCall.salvage(fields)
        if call_id is None:
            await self.host.redis.xdel(calls_key, entry_id)
            return
        result = Result(job_id=call_id, status=Status.REJECTED, error=why[:1000], executor=self.host.consumer)
        await self._store_call(keys=[keys.result(self.host.pool, call_id), calls_key],
                               args=[result.to_json(), self.host.settings.result_ttl_s,
                                     store.reply_channel(self.host.pool, reply_to or session.reply_to), entry_id])

    async def _call(self, session: Session, call: SessionCall) -> tuple[Result, str]:
        session.busy = True
        started = time.time()
        run = session_run(call)
        if session.egress is not None:
            session.egress.begin(call.call_id)
        try:
            reply, killed_for = await session.proc.call(run)
            outcome = call_verdict(run, reply, killed_for).outcome()
            if outcome.error_name == "Interrupted" and outcome.error:
                outcome.error_value = outcome.error  # the cell says which budget stopped it
            count, end_reason = reply.execution_count, ""
        except SessionDied as exc:
            session.doomed = True  # the worker ends it with this reason, not the watch loop
            status = session.proc.exited.result() if session.proc.exited.done() else None
            why = str(exc)
            if not isinstance(exc, (CallNotStopped, SessionBroke)):
                why = f"the session's process ended during the call (wait status {status})"
            exit_code = None if status is None else (-(status & 0x7F) if status & 0x7F else (status >> 8) & 0xFF)
            ended = STATUS_OF[exc.overrun] if isinstance(exc, CallNotStopped) else Status.ERROR
            outcome = RunOutcome(status=ended.value, exit_code=exit_code, error=f"{why}; the session ended",
                                 duration_s=round(time.time() - started, 6))
            count, end_reason = None, f"lost: {why}"
        finally:
            session.busy = False
            session.last_active = time.monotonic()
            session.calls += 1
            session.budget = (run.cpu_time, run.memory_mb << 20)
        session.proc.output().into(outcome)
        result = Result(**outcome.as_dict(), execution_count=count, job_id=call.call_id,
                        executor=f"{self.host.consumer}/{session.index}",
                        queue_wait_s=round(max(0.0, started - call.submitted_at), 6),
                        egress=await self._egress_of(session))
        return result, end_reason

    @staticmethod
    async def _egress_of(session: Session) -> EgressReport | None:
        """The call's egress (its connections end with it); None outside egress pools."""
        return await session.egress.finish() if session.egress is not None else None

