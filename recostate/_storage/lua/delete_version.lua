-- Delete one version. ARGV[4] the version. Replies: 1 if it existed, 0 | {'legacy'}.
local fmt = redis.call('HGET', S, 'fmt')
if not fmt then
  if redis.call('EXISTS', S) == 1 then return legacy_reply() end
  return 0
end
local v = ARGV[4]
if redis.call('HEXISTS', V, v) == 0 then return 0 end
if redis.call('LLEN', L) <= 1 then
  delete_state()
  return 1
end
local fields, new_tags, old_tags
if tonumber(v) == tonumber(redis.call('HGET', S, 'version')) then
  local newest = redis.call('LINDEX', L, -1)
  if newest == v then newest = redis.call('LINDEX', L, -2) end
  fields, new_tags = head_fields(tonumber(newest), redis.call('HGET', V, newest))
  old_tags = head_tags()
end
redis.call('LREM', L, 1, v)
drop_version(v)
collect_dictionary()
if fields then
  redis.call('HSET', S, unpack(fields))
  update_tags(old_tags, new_tags)
end
return 1
