-- Keep the newest ARGV[4] versions (0 deletes the state). Replies: how many went | {'legacy'}.
local fmt = redis.call('HGET', S, 'fmt')
if not fmt then
  if redis.call('EXISTS', S) == 1 then return legacy_reply() end
  return 0
end
local keep = tonumber(ARGV[4])
local n = redis.call('LLEN', L)
if n <= keep then return 0 end
if keep == 0 then
  delete_state()
  return n
end
for _ = 1, n - keep do drop_version(redis.call('LPOP', L)) end
collect_dictionary()
return n - keep
