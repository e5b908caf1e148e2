-- job_submit_idempotent.lua (used by dispatcher/request.py)
-- Create the job only if this idempotency key is new; either way return the job id, and
-- the new entry's id ('' when the key named an existing job).
local existing = redis.call('GET', KEYS[1])
if existing then return {existing, ''} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return {ARGV[1], redis.call('XADD', KEYS[2], '*', 'job', ARGV[3])}
