-- Save a new version. ARGV from 4:
--   [4] write id   [5] expected head ('' none)   [6] explicit version ('' next)
--   [7] versions to keep   [8] ttl in ms ('' none, 'keep' the state's remaining)
--   [9] now in ms   [10] the version's frame
--   [11..17] its readable fields: updated_at, size_bytes, stored_bytes,
--            compression_type, checksum, ttl, rolled_back_from
--   [18] dictionary id its new chunks use ('' none)   [19] dictionary frame ('' not sent)
--   [20] number of tags T, [21..20+T] the tags, then pairs (piece id, piece frame)
-- Replies: {'ok', version, created_ms} | {'dup', version, created_ms, head bytes or false}
--   | {'conflict', head} | {'missing'} | {'dict', the state's dictionary frame} | {'legacy'}
local wid, frame = ARGV[4], ARGV[10]
local cur = redis.call('HMGET', S, 'version', 'last', 'created_at_ms', 'tags', 'fmt')
if cur[1] and not cur[5] then return legacy_reply() end
local memory = redis.call('GET', D) or ''
local done = find_write(memory, wid)
local head = tonumber(cur[1] or '0')
if done then
  local old = frame_of(done, head)
  return {'dup', done, cur[3] or ARGV[9], old and head_of(old) or false}
end
local last = tonumber(cur[2] or '0')
if ARGV[5] ~= '' and tonumber(ARGV[5]) ~= head then return {'conflict', head} end
local v
if ARGV[6] ~= '' then
  v = tonumber(ARGV[6])
  if v <= head or v <= last then return {'conflict', head} end
else
  v = math.max(head, last) + 1
end
local ntags = tonumber(ARGV[20])
local new_tags = {}
for i = 21, 20 + ntags do new_tags[#new_tags + 1] = ARGV[i] end
local first_piece = 21 + ntags

-- A chunked version: every piece it refers to must be stored or sent.
if kind_of(frame) == KIND_MANIFEST then
  local refused = put_pieces(frame, ARGV[18], ARGV[19], first_piece)
  if refused then return refused end
end

local ttl = ARGV[8]
if ttl == 'keep' then
  local left = redis.call('PTTL', S)
  ttl = left > 0 and left or ''
end
-- A state without a pieces hash or reference counts (every version whole)
-- has nothing to release, collect or expire there: one EXISTS spares the
-- calls each of those would make.
local pieces = redis.call('EXISTS', C, R) > 0
local created = cur[3]
if not created then
  created = ARGV[9]
  redis.call('HSET', S, 'state_id', SID, 'created_at', iso(tonumber(created)),
    'created_at_ms', created, 'fmt', FORMAT)
else
  -- The old head's frame goes to its number; the new version is the head.
  local old = redis.call('HGET', V, HEAD)
  if old then redis.call('HSET', V, head, string.sub(old, HEAD_PREFIX + 1)) end
end
redis.call('HSET', V, HEAD, head_record(v, tonumber(created), frame))
redis.call('HSET', S, 'version', v, 'last', v, 'updated_at', ARGV[11], 'size_bytes', ARGV[12],
  'stored_bytes', ARGV[13], 'compression_type', ARGV[14], 'checksum', ARGV[15],
  'tags', tags_json(new_tags), 'ttl', ARGV[16], 'rolled_back_from', ARGV[17])
local n = redis.call('RPUSH', L, v)
local keep = tonumber(ARGV[7])
if n > keep then
  if pieces then
    for _ = 1, n - keep do drop_version(redis.call('LPOP', L)) end
    collect_dictionary()
  else
    for _ = 1, n - keep do redis.call('HDEL', V, redis.call('LPOP', L)) end
  end
end
memory = memory .. wid .. struct.pack('>d', v)
if #memory > WRITE_MEMORY * WRITE_RECORD then
  memory = string.sub(memory, #memory - WRITE_MEMORY * WRITE_RECORD + 1)
end
redis.call('SET', D, memory)
apply_ttl(ttl, pieces)
update_tags(tags_of(cur[4]), new_tags)
return {'ok', v, created}
