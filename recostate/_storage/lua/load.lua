-- Read a version with everything needed to decode it. ARGV[4] version ('' the head).
-- Replies: false (no such state or version) | {'legacy'}
--   | {version, created_ms, frame, dictionary frame or false, piece id, piece frame or false, ...}
local cur = redis.call('HMGET', S, 'version', 'created_at_ms', 'fmt')
if not cur[1] then return false end
if not cur[3] then return legacy_reply() end
local v = ARGV[4] == '' and cur[1] or ARGV[4]
local frame = redis.call('HGET', V, v)
if not frame then return false end
local out = {tonumber(v), cur[2], frame, false}
if kind_of(frame) == KIND_MANIFEST then
  out[4] = redis.call('HGET', C, 'd') or false
  local seen, wanted = {}, refs_of(frame)
  while #wanted > 0 do
    local found = redis.call('HMGET', C, unpack(wanted))
    local next_wanted = {}
    for i, id in ipairs(wanted) do
      if not seen[id] then
        seen[id] = true
        local piece = found[i]
        out[#out + 1] = id
        out[#out + 1] = piece or false
        if piece and kind_of(piece) == KIND_NODE then
          for _, child in ipairs(refs_of(piece)) do
            if not seen[child] then next_wanted[#next_wanted + 1] = child end
          end
        end
      end
    end
    wanted = next_wanted
  end
end
return out
