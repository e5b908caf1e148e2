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

# KEYS[1] lease set, KEYS[2] pods set. ARGV: pod id, ttl s, cap, floor, pod key prefix.
# The pod keys are read by prefix: they are all under the pool's prefix (one ACL pattern).
# Each is a warmfleet.contract.snapshot.PodSnapshot as JSON; the loop sums its `serving_slots`
# (0 while `draining`, else `ready` + `busy`) over the pods not holding the lease.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl, cap, floor = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  return {1, -1, 'renewed'}
end
if redis.call('ZCARD', KEYS[1]) >= cap then return {0, -1, 'cap'} end
local serving = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if id ~= ARGV[1] and not redis.call('ZSCORE', KEYS[1], id) then
    local raw = redis.call('GET', ARGV[5] .. id)
    if raw then
      local ok, pod = pcall(cjson.decode, raw)
      if ok and type(pod) == 'table' and pod['draining'] ~= true then
        serving = serving + (tonumber(pod['ready']) or 0) + (tonumber(pod['busy']) or 0)
      end
    end
  end
end
if serving < floor then return {0, serving, 'floor'} end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
return {1, serving, 'granted'}
"""


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
