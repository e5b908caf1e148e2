"""The fleet-wide recycle lease: at most `max_recycling` pods recycle at once, and none
starts while the others would serve fewer than `min_serving_slots` slots.

One Lua script decides atomically, so two sidecars checking at the same moment cannot
both pass the floor. Members of the lease set (keys.recycle_lease) are pod ids scored by
their expiry: a sidecar that dies mid-recycle frees its place when the lease lapses.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from warmfleet.contract import keys
from warmfleet.contract import lua

_ACQUIRE = lua.script("recycle_lease_acquire")  # warmfleet/contract/lua/recycle_lease_acquire.lua


@dataclass(frozen=True)
class LeaseAnswer:
    granted: bool
    why: str  # granted, renewed, cap (too many recycling), floor (capacity too low)
    others_serving: int  # slots the rest of the fleet serves; -1 when not counted


class RecycleLease:
    def __init__(self, r: redis.Redis, pool: str, max_recycling: int, min_serving_slots: int) -> None:
        self.redis = r
        self.pool = pool
        self.max_recycling = max_recycling
        self.min_serving_slots = min_serving_slots
        self._acquire = r.register_script(_ACQUIRE)

    def acquire(self, pod_id: str, ttl_s: float) -> LeaseAnswer:
        granted, serving, why = self._acquire(
            keys=[keys.recycle_lease(self.pool), keys.pods(self.pool)],
            args=[pod_id, ttl_s, self.max_recycling, self.min_serving_slots, keys.pod(self.pool, "")],
        )
        why = why.decode() if isinstance(why, bytes) else why
        return LeaseAnswer(bool(granted), why, int(serving))

    def release(self, pod_id: str) -> None:
        self.redis.zrem(keys.recycle_lease(self.pool), pod_id)

    def holders(self) -> list[str]:
        return [m.decode() if isinstance(m, bytes) else m for m in self.redis.zrange(keys.recycle_lease(self.pool), 0, -1)]
