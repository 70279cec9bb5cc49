-- Read a version with everything needed to decode it, but what the client holds.
-- ARGV[4] version ('' the head), [5] the id of the dictionary the client holds (''),
-- [6] how many chunks may come in the reply (more: their ids come instead),
-- [7..] ids of pieces the client holds (a node it holds stands for all it names).
-- Replies: false (no such state or version) | {'legacy'}
--   | {version, created_ms, frame, dictionary frame or false, {ids of chunks to fetch},
--      piece id, piece frame or false, ...}
local v, created, frame = read_version(ARGV[4])
if v == 'legacy' then return legacy_reply() end
if not v then return false end
local out = {v, created, frame, false, {}}
if kind_of(frame) == KIND_MANIFEST then
  if ARGV[5] == '' or redis.call('HGET', C, 'i') ~= ARGV[5] then
    out[4] = redis.call('HGET', C, 'd') or false
  end
  out[5] = read_pieces(frame, 7, out, tonumber(ARGV[6]))
end
return out
