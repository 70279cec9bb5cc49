-- Every stored version's header, oldest first.
-- Replies: {} (no such state) | {'legacy'} | {created_ms, {version, header bytes, stored size}...}
local cur = redis.call('HMGET', S, 'created_at_ms', 'fmt', 'version')
if not cur[1] then return {} end
if not cur[2] then return legacy_reply() end
local head = tonumber(cur[3])
local out = {cur[1]}
for _, v in ipairs(redis.call('LRANGE', L, 0, -1)) do
  local frame = frame_of(tonumber(v), head)
  if frame then out[#out + 1] = {tonumber(v), head_of(frame), #frame} end
end
return out
