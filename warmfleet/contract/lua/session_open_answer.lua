-- session_open_answer.lua (used by executor/sessions/opens.py; warmfleet/testing/sessions.py)
-- KEYS: record, result, opens stream. ARGV: pod, final record, its TTL (ms), result,
-- result TTL (s), group, entry id, reply channel ('' for none).
local cur = redis.call('GET', KEYS[1])
if cur then
  local rec = cjson.decode(cur)
  if rec['pod'] ~= ARGV[1] or rec['state'] ~= 'opening' then return 0 end
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[8], ARGV[4]) end
redis.call('XACK', KEYS[3], ARGV[6], ARGV[7])
redis.call('XDEL', KEYS[3], ARGV[7])
return 1
