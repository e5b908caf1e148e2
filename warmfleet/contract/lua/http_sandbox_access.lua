-- http_sandbox_access.lua (used by warmfleet/http/e2b/access.py)
-- A data-plane request's one round trip: the sandbox's record, and the tenant its key
-- opens (nil once the key is revoked).
-- KEYS[1] the sandbox record (keys.http_sandbox), KEYS[2] the API keys hash (keys.api_keys).
local rec = redis.call('GET', KEYS[1])
if not rec then return {false, false} end
local key_hash = cjson.decode(rec)['key_hash']
if not key_hash or key_hash == '' then return {rec, false} end
return {rec, redis.call('HGET', KEYS[2], key_hash)}
