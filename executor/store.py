"""What an executor writes to Redis: results (stored before the ack), pod heartbeats,
the fleet's limits, dead letters."""

from __future__ import annotations

import json
import time

from redis.asyncio import Redis

from warmfleet.contract import keys
from warmfleet.contract.schema import FleetLimits, Result
from warmfleet.contract.snapshot import PodSnapshot
from warmfleet.contract import lua

_STORE_AND_ACK = lua.script("job_result_store")  # warmfleet/contract/lua/job_result_store.lua


class ResultStore:
    def __init__(self, redis: Redis, pool: str, ttl_s: int) -> None:
        self.redis = redis
        self.pool = pool
        self.ttl_s = ttl_s
        self._store_and_ack = redis.register_script(_STORE_AND_ACK)

    async def exists(self, job_id: str) -> bool:
        return bool(await self.redis.exists(keys.result(self.pool, job_id)))

    async def store_and_ack(self, entry_id: str, result: Result, reply_to: str | None, stream: str | None = None) -> bool:
        """True if this call stored the result, False if one was already there. `stream`:
        the group's stream the entry came from (the job stream unless said)."""
        stored = await self._store_and_ack(
            keys=[keys.result(self.pool, result.job_id), stream or keys.stream(self.pool)],
            args=[result.to_json(), self.ttl_s, keys.CONSUMER_GROUP, entry_id, reply_channel(self.pool, reply_to)],
        )
        return bool(stored)

    async def add_output(self, job_id: str, fields: dict) -> None:
        """Append one record (warmfleet.contract.messages: chunk, restart or end) to a streaming job's output stream."""
        key = keys.output(self.pool, job_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, fields, maxlen=100_000, approximate=True)
            pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def ack_only(self, entry_id: str, stream: str | None = None) -> None:
        stream = stream or keys.stream(self.pool)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(stream, keys.CONSUMER_GROUP, entry_id)
            pipe.xdel(stream, entry_id)
            await pipe.execute()

    async def dead_letter(self, entry_id: str, fields: dict, reason: str) -> None:
        """Keep an entry nobody can be answered for (no job id), then ack it."""
        await self.record_dead_letter(entry_id, reason, fields=fields)
        await self.ack_only(entry_id)

    async def record_dead_letter(self, entry_id: str, reason: str, *, fields: dict | None = None, job_id: str = "") -> None:
        """What operators inspect: every entry the fleet gave up on, answered or not."""
        sample = {str(k)[:64]: str(v)[:256] for k, v in list((fields or {}).items())[:8]}
        await self.redis.xadd(
            keys.dead_letters(self.pool),
            {"entry_id": entry_id, "job_id": job_id, "reason": reason[:1000], "fields": json.dumps(sample), "ts": time.time()},
            maxlen=10000,
            approximate=True,
        )


def reply_channel(pool: str, reply_to: str | None) -> str:
    """Where to publish a result: the client's channel, never outside the pool's own
    namespace ("": nowhere)."""
    return reply_to if reply_to and reply_to.startswith(keys.reply_channel(pool, "")) else ""


async def ensure_group(redis: Redis, pool: str) -> None:
    for stream in (keys.stream(pool), keys.session_opens(pool)):
        try:
            await redis.xgroup_create(stream, keys.CONSUMER_GROUP, id="0", mkstream=True)
        except Exception as exc:  # redis.ResponseError; BUSYGROUP means it already exists
            if "BUSYGROUP" not in str(exc):
                raise


async def publish_limits(redis: Redis, pool: str, limits: FleetLimits) -> None:
    await redis.set(keys.limits(pool), limits.model_dump_json())


async def heartbeat(redis: Redis, pool: str, snapshot: PodSnapshot, ttl_s: float) -> None:
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(keys.pod(pool, snapshot.pod_id), snapshot.replace(heartbeat=now).to_json(), px=int(ttl_s * 1000))
        pipe.zadd(keys.pods(pool), {snapshot.pod_id: now})
        await pipe.execute()


async def deregister(redis: Redis, pool: str, pod_id: str) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.delete(keys.pod(pool, pod_id))
        pipe.zrem(keys.pods(pool), pod_id)
        await pipe.execute()
