-- session_lease_renew.lua (used by executor/sessions/watch.py)
-- Renew the leases of open sessions: rewrite each record (PX lease) unless it says the
-- session ended; a record whose lease lapsed while this pod was starved (a fork bomb
-- next door) comes back rather than staying "lost" for a session that lives.
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if (not cur) or cjson.decode(cur)['state'] == 'open' then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
  end
end
return 0
