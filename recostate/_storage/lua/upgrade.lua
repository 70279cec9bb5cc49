-- Move a state written by recostate 0.1 (format 1) into format 2, in place.
-- KEYS: the format-2 keys, then [7] the 0.1 version index, [8] the 0.1 write ids.
-- ARGV[4] the 0.1 version key base, [5] its suffix.
-- Replies: the number of versions moved (0: nothing to do).
if redis.call('EXISTS', S) == 0 or redis.call('HGET', S, 'fmt') then return 0 end
local pttl = redis.call('PTTL', S)
local moved = 0
for _, v in ipairs(redis.call('ZRANGE', KEYS[7], 0, -1)) do
  local key = ARGV[4] .. v .. ARGV[5]
  local frame = redis.call('GET', key)
  if frame then
    redis.call('HSET', V, v, frame)
    redis.call('RPUSH', L, v)
    moved = moved + 1
  end
  redis.call('DEL', key)
end
-- 0.1 write ids are shorter than format 2's and no 0.1 client retries into
-- a format-2 state: they are dropped.
redis.call('DEL', KEYS[7], KEYS[8])
redis.call('HSET', S, 'fmt', FORMAT)
if moved == 0 then
  redis.call('DEL', S, L, V)
  return 0
end
-- The head goes to its record (a reader of the head needs one HGET). If the
-- head's own version is gone, the newest stored becomes the head, with its
-- readable fields and tags.
local cur = redis.call('HMGET', S, 'version', 'created_at_ms')
local head = tonumber(cur[1])
local frame = head and redis.call('HGET', V, head)
if not frame then
  head = tonumber(redis.call('LINDEX', L, -1))
  frame = redis.call('HGET', V, head)
  local fields, new_tags = head_fields(head, frame)
  local old_tags = head_tags()
  redis.call('HSET', S, unpack(fields))
  update_tags(old_tags, new_tags)
end
redis.call('HSET', V, HEAD, head_record(head, tonumber(cur[2] or '0'), frame))
redis.call('HDEL', V, head)
if pttl > 0 then
  redis.call('PEXPIRE', L, pttl)
  redis.call('PEXPIRE', V, pttl)
end
return moved
