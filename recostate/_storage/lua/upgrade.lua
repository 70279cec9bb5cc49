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
  redis.call('DEL', S)
elseif pttl > 0 then
  redis.call('PEXPIRE', L, pttl)
  redis.call('PEXPIRE', V, pttl)
end
return moved
