-- session_open_claim.lua (used by executor/sessions/opens.py; warmfleet/testing/sessions.py)
-- KEYS: record, result. ARGV: the "opening" record, the lease (ms).
if redis.call('EXISTS', KEYS[2]) == 1 then return 'answered' end
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 'claimed'
