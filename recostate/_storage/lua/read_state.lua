-- What an export or a check needs: the version numbers, the creation time, the
-- remaining time to live. Replies: false | {'legacy'} | {created_ms, pttl, {versions...}}
local cur = redis.call('HMGET', S, 'created_at_ms', 'fmt')
if not cur[1] then return false end
if not cur[2] then return legacy_reply() end
return {cur[1], redis.call('PTTL', S), redis.call('LRANGE', L, 0, -1)}
