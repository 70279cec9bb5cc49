-- Delete one version. ARGV[4] the version. Replies: 1 if it existed, 0 | {'legacy'}.
local cur = redis.call('HMGET', S, 'fmt', 'version', 'created_at_ms')
if not cur[1] then
  if redis.call('EXISTS', S) == 1 then return legacy_reply() end
  return 0
end
local v, head = tonumber(ARGV[4]), tonumber(cur[2])
if v ~= head and redis.call('HEXISTS', V, v) == 0 then return 0 end
if redis.call('LLEN', L) <= 1 then
  delete_state()
  return 1
end
redis.call('LREM', L, 1, v)
if v == head then
  -- The newest remaining version becomes the head.
  local newest = tonumber(redis.call('LINDEX', L, -1))
  local frame = redis.call('HGET', V, newest)
  local old = frame_of(head, head)
  -- (the old head's number too: a head without a record is kept there)
  redis.call('HDEL', V, newest, head)
  redis.call('HSET', V, HEAD, head_record(newest, tonumber(cur[3]), frame or ''))
  local fields, new_tags = head_fields(newest, frame or '')
  local old_tags = head_tags()
  redis.call('HSET', S, unpack(fields))
  update_tags(old_tags, new_tags)
  release(old)
else
  drop_version(v)
end
collect_dictionary()
return 1
