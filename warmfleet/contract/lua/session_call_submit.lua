-- session_call_submit.lua (used by dispatcher/session.py)
-- Enqueue a call only while the session is open: one round trip, and a call never waits
-- in the stream of a session that has ended. Returns the record when it is not open.
local rec = redis.call('GET', KEYS[1])
if not rec then return {0, ''} end
if cjson.decode(rec)['state'] ~= 'open' then return {0, rec} end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'call', ARGV[1])
return {1, ''}
