-- A version's header, without its payload. ARGV[4] version ('' the head).
-- Replies: false | {'legacy'} | {version, created_ms, header bytes, stored size}
local cur = redis.call('HMGET', S, 'version', 'created_at_ms', 'fmt')
if not cur[1] then return false end
if not cur[3] then return legacy_reply() end
local v = ARGV[4] == '' and cur[1] or ARGV[4]
local frame = redis.call('HGET', V, v)
if not frame then return false end
return {tonumber(v), cur[2], head_of(frame), #frame}
