"""E2B sandboxes as warmfleet sessions: what the protocol adds to a session (tenant,
pool, access token, metadata, end time, contexts) is one record in Redis, so any replica
answers for any sandbox, and each replica's reaper ends the ones whose time has come.

A sandbox's id is its session's id. Its E2B timeout is kept here, not by the session:
E2B lets a client move it (set_timeout, connect), a session's lifetime is fixed when it
opens. So the session opens with the longest lifetime the service allows (the pods clamp
it to theirs), and the reaper closes it at the sandbox's end time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time

from pydantic import BaseModel, ConfigDict, Field

from dispatcher.errors import SessionEnded, WaitTimeout
from warmfleet.contract import keys
from warmfleet.http.errors import ApiError
from warmfleet.http.tenants import Tenant

log = logging.getLogger("warmfleet.http")

REAP_BATCH = 64
CLOSE_WAIT_S = 2.0
# E2B's proxy answers this for a sandbox it does not know; the SDK reads "was not found"
# in a 502 as "the sandbox was killed or reached its timeout".
NOT_FOUND_502 = "The sandbox was not found"
# The context the service's own calls run in (file reads, setup): never the user's globals.
SERVICE_CONTEXT = "_wf"
SETUP_CODE = "import os, json\nos.environ.update(json.loads(%r))\nprint(os.getcwd())"


class SandboxRecord(BaseModel):
    """One sandbox, as every replica sees it (keys.http_sandbox)."""

    model_config = ConfigDict(extra="ignore")

    sandbox_id: str
    tenant: str
    pool: str
    template_id: str
    access_token: str  # envd's X-Access-Token for this sandbox: a capability, like E2B's
    key_hash: str = ""  # the API key that made it (its hash): revoked, the sandbox answers no more
    workspace: str = ""  # the session's workspace path, where /home/user maps
    metadata: dict[str, str] = Field(default_factory=dict)
    started_at: float
    end_at: float


class Sandboxes:
    def __init__(self, redis, fleet, quotas, settings, clock=time.time) -> None:
        self.redis, self.fleet, self.quotas, self.settings, self.clock = redis, fleet, quotas, settings, clock

    def lifetime(self, timeout: int | None) -> int:
        """A client's E2B timeout as seconds of life (0 or none: the default), capped."""
        if not timeout:
            return self.settings.http_default_timeout_s
        if timeout > self.settings.http_max_timeout_s:
            raise ApiError(400, f"timeout {timeout} s exceeds this service's maximum of {self.settings.http_max_timeout_s} s")
        return timeout

    async def create(self, tenant: Tenant, key_hash: str, pool: str, template_id: str, timeout: int | None,
                     env: dict[str, str], metadata: dict[str, str]) -> SandboxRecord:
        life = self.lifetime(timeout)
        now = self.clock()
        client = self.fleet.client(pool)
        placeholder = "pending-" + secrets.token_hex(8)
        await self.quotas.reserve_sandbox(tenant, placeholder, now + self.settings.http_open_timeout_s + 5)
        try:
            session = client.session(idle_timeout=self.settings.http_max_timeout_s, max_lifetime=self.settings.http_max_timeout_s,
                                     open_timeout=self.settings.http_open_timeout_s)
            try:
                await session.open()
            except WaitTimeout:
                raise ApiError(503, f"no sandbox could be opened in pool {pool!r} within "
                                    f"{self.settings.http_open_timeout_s:g} s: the pool is full or not running") from None
            except SessionEnded as exc:
                raise ApiError(503, f"the pool {pool!r} could not open a sandbox: {exc}") from None
            # Where it lives (files map /home/user there), and its environment: every later
            # cell and bash command sees it. In the service's own context: no user globals.
            setup = await session.run(SETUP_CODE % json.dumps(env), context=SERVICE_CONTEXT)
            if not setup.ok:
                await session.close(wait=0)
                raise ApiError(503, f"the sandbox could not be set up: {setup.error or setup.stderr[-500:]}")
            record = SandboxRecord(sandbox_id=session.id, tenant=tenant.name, pool=pool, template_id=template_id,
                                   access_token=secrets.token_urlsafe(24), key_hash=key_hash,
                                   workspace=setup.stdout.strip(), metadata=metadata,
                                   started_at=now, end_at=now + life)
            await self.save(record)
        finally:
            await self.quotas.release_sandbox(tenant.name, placeholder)
        return record

    async def save(self, record: SandboxRecord) -> None:
        ttl = max(1, int(record.end_at - self.clock()) + 3600)  # outlives its end: the reaper's to delete
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.http_sandbox(record.sandbox_id), record.model_dump_json(), ex=ttl)
            pipe.zadd(keys.http_sandbox_ends(), {record.sandbox_id: record.end_at})
            pipe.zadd(keys.tenant_sandboxes(record.tenant), {record.sandbox_id: record.end_at})
            pipe.expire(keys.tenant_sandboxes(record.tenant), ttl, gt=True)  # never shortened (reserve set one)
            await pipe.execute()

    async def get(self, tenant: Tenant | None, sandbox_id: str) -> SandboxRecord | None:
        """The sandbox if it is open and (given a tenant) that tenant's: another tenant's
        answers exactly as an unknown one."""
        if not sandbox_id or len(sandbox_id) > 128:
            return None
        raw = await self.redis.get(keys.http_sandbox(sandbox_id))
        record = self.parse(raw) if raw is not None else None
        if record is None or (tenant is not None and record.tenant != tenant.name):
            return None
        return record

    def parse(self, raw: bytes | str) -> SandboxRecord | None:
        """A stored record, or None once its time is up (the reaper is on its way)."""
        record = SandboxRecord.model_validate_json(raw)
        return record if record.end_at > self.clock() else None

    async def require(self, tenant: Tenant, sandbox_id: str) -> SandboxRecord:
        record = await self.get(tenant, sandbox_id)
        if record is None:
            raise ApiError(404, f"sandbox {sandbox_id!r} not found")
        return record

    async def list(self, tenant: Tenant) -> list[SandboxRecord]:
        key = keys.tenant_sandboxes(tenant.name)
        await self.redis.zremrangebyscore(key, "-inf", self.clock())
        ids = [i.decode() if isinstance(i, bytes) else i for i in await self.redis.zrange(key, 0, -1)]
        ids = [i for i in ids if not i.startswith("pending-")]
        if not ids:
            return []
        raws = await self.redis.mget([keys.http_sandbox(i) for i in ids])
        out = [SandboxRecord.model_validate_json(r) for r in raws if r is not None]
        return [r for r in out if r.tenant == tenant.name and r.end_at > self.clock()]

    async def set_end(self, record: SandboxRecord, end_at: float) -> SandboxRecord:
        record = record.model_copy(update={"end_at": end_at})
        await self.save(record)
        return record

    async def kill(self, record: SandboxRecord, why: str = "killed") -> None:
        """End the sandbox: its session closes (the pod kills its processes and empties its
        workspace), its record and contexts go, its quota place is given back."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.http_sandbox(record.sandbox_id), keys.http_sandbox_contexts(record.sandbox_id))
            pipe.zrem(keys.http_sandbox_ends(), record.sandbox_id)
            pipe.zrem(keys.tenant_sandboxes(record.tenant), record.sandbox_id)
            await pipe.execute()
        with contextlib.suppress(Exception):
            await self.fleet.client(record.pool).session(id=record.sandbox_id).close(wait=CLOSE_WAIT_S)
        log.info("sandbox ended", extra={"sandbox_id": record.sandbox_id, "tenant": record.tenant, "reason": why})

    async def forget(self, record: SandboxRecord) -> None:
        """Its session ended on its own (lost, idle): drop what we keep of it."""
        await self.kill(record, "session ended")

    async def reap(self) -> int:
        """End every sandbox whose time has come; a ZREM decides which replica does each."""
        due = await self.redis.zrangebyscore(keys.http_sandbox_ends(), "-inf", self.clock(), start=0, num=REAP_BATCH)
        n = 0
        for sandbox_id in due:
            sandbox_id = sandbox_id.decode() if isinstance(sandbox_id, bytes) else sandbox_id
            if not await self.redis.zrem(keys.http_sandbox_ends(), sandbox_id):
                continue  # another replica took it
            raw = await self.redis.get(keys.http_sandbox(sandbox_id))
            if raw is None:
                continue
            await self.kill(SandboxRecord.model_validate_json(raw), "timeout")
            n += 1
        return n


def sandboxes_of(app) -> Sandboxes:
    """The app's Sandboxes, made on first use from what the app holds."""
    found = getattr(app.state, "sandboxes", None)
    if found is None:
        st = app.state
        found = st.sandboxes = Sandboxes(st.fleet.redis, st.fleet, st.quotas, st.settings)
    return found


async def reaper(app) -> None:
    """Background task of every replica (app.py runs it): sandboxes end at their time."""
    sandboxes = sandboxes_of(app)
    every = app.state.settings.http_reap_every_s
    while True:
        try:
            await sandboxes.reap()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - Redis away: try again next round
            log.warning("sandbox reaper: %s", exc)
        await asyncio.sleep(every)  # a period, not a synchronisation
