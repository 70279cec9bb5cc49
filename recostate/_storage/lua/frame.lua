-- A version's frame alone (a rollback copies it). ARGV[4] the version.
-- Replies: false | {'legacy'} | {version, created_ms, frame}
local v, created, frame = read_version(ARGV[4])
if v == 'legacy' then return legacy_reply() end
if not v then return false end
return {v, created, frame}
