-- job_result_store.lua (used by executor/store.py; warmfleet/testing/fleet.py)
-- Store the result only if none exists (reclaim and failover deliver twice), publish it
-- to the waiting client only if we stored it, then acknowledge and delete the entry.
-- Deleting an acknowledged entry is safe for lag: with one group, every acked entry is
-- at or before the group's last-delivered id, so XINFO GROUPS lag stays defined.
local stored = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
if stored and ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[1]) end
redis.call('XACK', KEYS[2], ARGV[3], ARGV[4])
redis.call('XDEL', KEYS[2], ARGV[4])
if stored then return 1 end
return 0
