-- recycle_lease_acquire.lua (used by gc_sidecar/lease.py)
-- KEYS[1] lease set, KEYS[2] pods set. ARGV: pod id, ttl s, cap, floor, pod key prefix.
-- The pod keys are read by prefix: they are all under the pool's prefix (one ACL pattern).
-- Each is a warmfleet.contract.snapshot.PodSnapshot as JSON; the loop sums its `serving_slots`
-- (0 while `draining`, else `ready` + `busy`) over the pods not holding the lease.
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
