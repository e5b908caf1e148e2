"""One session's calls on its pod, in order: each call read from the session's stream
(deduplicated by its id), sent to the session's process under its budgets, its Result
stored SET NX and published to the caller in one script, the call entry dropped. A call
that cost the session its process ends the session with the reason."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Protocol

from executor import metrics, store
from executor.sessions.handle import SessionBroke, SessionDied, classify
from executor.sessions.state import Session
from warmfleet.contract import keys
from warmfleet.contract.schema import JOB_ID_RE, EgressReport, Result, Status, check_env
from warmfleet.contract import lua

log = logging.getLogger("warmfleet.sessions")

SEEN_CALLS = 256  # call ids remembered per session for deduplication
_STORE_CALL = lua.script("session_call_store")  # warmfleet/contract/lua/session_call_store.lua
_BUDGET_WORDS = {"cpu_limit": "CPU-time", "memory_limit": "memory limit", "output_limit": "output cap"}


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
            if "close" in fields:
                await self.host.end(session, "closed", worker=True)
                return
            call: object = None
            try:
                call = json.loads(fields["call"])
                call_id = call["call_id"]
                msg = {"t": "call", "code": call["code"], "timeout": float(call["timeout"]),
                       "cpu_time": float(call["cpu_time"]), "memory_mb": int(call["memory_mb"]),
                       "files": call.get("files") or {}, "env": call.get("env") or {}}
                check_env(msg["env"])
                reply_to = call.get("reply_to") or session.reply_to
                submitted_at = float(call.get("submitted_at", time.time()))
                if not JOB_ID_RE.match(call_id):
                    raise ValueError("bad call id")
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("malformed session call rejected", extra={"session_id": session.id, "error": str(exc)})
                await self._reject(call, f"malformed session call: {exc!r}", calls_key, entry_id, session)
                continue
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
            result, end_reason = await self._call(session, call_id, msg, submitted_at)
            t_ran = time.perf_counter()
            await self._store_call(keys=[keys.result(self.host.pool, call_id), calls_key],
                                   args=[result.to_json(), self.host.settings.result_ttl_s,
                                         store.reply_channel(self.host.pool, reply_to), entry_id])
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

    async def _reject(self, call: object, why: str, calls_key: str, entry_id: str, session: Session) -> None:
        """Drop a call that cannot run; answer it REJECTED if it names an id to answer to
        (a client other than ours wrote it: it must not wait for ever)."""
        call_id = call.get("call_id") if isinstance(call, dict) else None
        if not (isinstance(call_id, str) and JOB_ID_RE.match(call_id)):
            await self.host.redis.xdel(calls_key, entry_id)
            return
        reply_to = call.get("reply_to") if isinstance(call, dict) and isinstance(call.get("reply_to"), str) else None
        result = Result(job_id=call_id, status=Status.REJECTED, error=why[:1000], executor=self.host.consumer)
        await self._store_call(keys=[keys.result(self.host.pool, call_id), calls_key],
                               args=[result.to_json(), self.host.settings.result_ttl_s,
                                     store.reply_channel(self.host.pool, reply_to or session.reply_to), entry_id])

    async def _call(self, session: Session, call_id: str, msg: dict, submitted_at: float) -> tuple[Result, str]:
        session.busy = True
        started = time.time()
        base = {"job_id": call_id, "executor": f"{self.host.consumer}/{session.index}",
                "queue_wait_s": round(max(0.0, started - submitted_at), 6)}
        if session.egress is not None:
            session.egress.begin(call_id)
        try:
            reply, killed_for = await session.proc.call(msg)
        except SessionDied as exc:
            session.doomed = True  # the worker ends it with this reason, not the watch loop
            status = session.proc.exited.result() if session.proc.exited.done() else None
            out, err, out_t, err_t = session.proc.output()
            why = str(exc)
            kind = next((k for k in ("cpu_limit", "memory_limit", "output_limit") if _BUDGET_WORDS[k] in why), None)
            if kind is None and "wall-clock" in why:
                kind = "timeout"
            exit_code = None if status is None else (-(status & 0x7F) if status & 0x7F else (status >> 8) & 0xFF)
            if kind is None and "did not stop" not in why and not isinstance(exc, SessionBroke):
                why = f"the session's process ended during the call (wait status {status})"
            result = Result(status=Status(kind or "error"), exit_code=exit_code, stdout=out, stderr=err,
                            stdout_truncated=out_t, stderr_truncated=err_t, duration_s=round(time.time() - started, 6),
                            error=f"{why}; the session ended", egress=await self._egress_of(session), **base)
            return result, f"lost: {why}"
        finally:
            session.busy = False
            session.last_active = time.monotonic()
            session.calls += 1
            session.budget = (msg["cpu_time"], msg["memory_mb"] << 20)
        status, exit_code, error = classify(reply, killed_for, msg)
        out, err, out_t, err_t = session.proc.output()
        result = Result(status=Status(status), exit_code=exit_code, error=error, stdout=out, stderr=err,
                        stdout_truncated=out_t, stderr_truncated=err_t, duration_s=reply.get("duration_s", 0.0),
                        cpu_s=reply.get("cpu_s", 0.0), max_rss_bytes=reply.get("max_rss_bytes", 0),
                        files=reply.get("files") or {}, files_truncated=bool(reply.get("files_truncated")),
                        egress=await self._egress_of(session), **_cell_fields(reply, error), **base)
        return result, ""

    @staticmethod
    async def _egress_of(session: Session) -> EgressReport | None:
        """The call's egress (its connections end with it); None outside egress pools."""
        return await session.egress.finish() if session.egress is not None else None


def _cell_fields(reply: dict, error: str | None) -> dict:
    """The call's cell (outputs, text, structured error, its number); checked by the
    handle. An interrupted call's error says which budget stopped it."""
    fields = {k: reply.get(k) for k in ("text", "error_name", "error_value", "traceback", "execution_count")}
    fields["outputs"] = reply.get("outputs") or []
    fields["outputs_truncated"] = bool(reply.get("outputs_truncated"))
    if fields["error_name"] == "Interrupted" and error:
        fields["error_value"] = error
    return fields
