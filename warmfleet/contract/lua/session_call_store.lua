-- session_call_store.lua (used by executor/sessions/calls.py; warmfleet/testing/sessions.py)
-- Store a call's result once, publish it to the caller if stored, drop the call entry.
local stored = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
if stored and ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[1]) end
redis.call('XDEL', KEYS[2], ARGV[4])
if stored then return 1 end
return 0
