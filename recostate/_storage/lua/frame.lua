-- A version's frame alone (a rollback copies it). ARGV[4] the version.
-- Replies: false | {'legacy'} | {version, created_ms, frame}
local cur = redis.call('HMGET', S, 'created_at_ms', 'fmt')
if not cur[1] then return false end
if not cur[2] then return legacy_reply() end
local frame = redis.call('HGET', V, ARGV[4])
if not frame then return false end
return {tonumber(ARGV[4]), cur[1], frame}
