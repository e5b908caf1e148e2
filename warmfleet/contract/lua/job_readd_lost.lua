-- job_readd_lost.lua (used by dispatcher/request.py)
-- After a failover the new primary may lack entries the old one had accepted (replication
-- is asynchronous). For each job a client still waits for: if neither its result nor its
-- entry (that id, that very job) exists, add the entry again, same job id. Returns pairs
-- (job id, new entry id). KEYS[1] the pool's stream, KEYS[1+n] the n-th job's result;
-- ARGV per job: job id, entry id ('' if unknown), the entry's job JSON. One slot: the pool's.
local readded = {}
for n = 1, #KEYS - 1 do
  local i = 3 * n - 2
  if redis.call('EXISTS', KEYS[1 + n]) == 0 then
    local present = false
    if ARGV[i + 1] ~= '' then
      for _, e in ipairs(redis.call('XRANGE', KEYS[1], ARGV[i + 1], ARGV[i + 1])) do
        for j = 1, #e[2], 2 do
          if e[2][j] == 'job' and e[2][j + 1] == ARGV[i + 2] then present = true end
        end
      end
    end
    if not present then
      table.insert(readded, ARGV[i])
      table.insert(readded, redis.call('XADD', KEYS[1], '*', 'job', ARGV[i + 2]))
    end
  end
end
return readded
