-- A version's header, without its payload. ARGV[4] version ('' the head).
-- Replies: false | {'legacy'} | {version, created_ms, header bytes, stored size}
local v, created, frame = read_version(ARGV[4])
if v == 'legacy' then return legacy_reply() end
if not v then return false end
return {v, created, head_of(frame), #frame}
