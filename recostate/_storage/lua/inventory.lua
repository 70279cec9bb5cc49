-- Every piece of the state with its reference count, and the versions' frames
-- (for recostate verify and the tests that check no piece is orphaned or dangling).
-- Replies: {'legacy'} | {{{version, frame}...}, {{id, frame, count}...}, dictionary or false}
local cur = redis.call('HMGET', S, 'fmt', 'version')
if not cur[1] and redis.call('EXISTS', S) == 1 then return legacy_reply() end
local head = tonumber(cur[2])
local versions = {}
for _, v in ipairs(redis.call('LRANGE', L, 0, -1)) do
  versions[#versions + 1] = {tonumber(v), frame_of(tonumber(v), head) or false}
end
local pieces = {}
local all = redis.call('HGETALL', C)
for i = 1, #all, 2 do
  local id = all[i]
  if #id == ID_SIZE then
    pieces[#pieces + 1] = {id, all[i + 1], redis.call('HGET', R, id) or false}
  end
end
return {versions, pieces, redis.call('HGET', C, 'd') or false}
