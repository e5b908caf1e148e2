-- http_quota_reserve.lua (used by warmfleet/http/quotas.py)
-- Take one place in a quota set (a sorted set of members scored by their deadline).
-- KEYS[1] the set; ARGV: now, member, deadline, max (-1: no limit).
-- Members past their deadline are dropped first, so a replica that died holding places
-- gives them back when their deadlines pass. Returns 1 if taken, 0 if the set is full.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local max = tonumber(ARGV[4])
if max >= 0 and redis.call('ZCARD', KEYS[1]) >= max then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
-- The set outlives its longest member (relative to the caller's clock, which the
-- deadlines are on): only ever lengthened, never cut below another member's deadline.
local ms = math.floor((tonumber(ARGV[3]) - tonumber(ARGV[1]) + 60) * 1000)
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('PEXPIRE', KEYS[1], ms)
end
return 1
