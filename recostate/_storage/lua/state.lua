-- Helpers of the per-state scripts (after state_keys.lua and pieces.lua).

local function legacy_reply()
  return {'legacy'}
end

-- Milliseconds since the epoch as ISO-8601 UTC (days-to-civil, H. Hinnant).
local function iso(ms)
  local secs = math.floor(ms / 1000)
  local milli = ms - secs * 1000
  local days = math.floor(secs / 86400)
  local rem = secs - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d,
    math.floor(rem / 3600), math.floor((rem % 3600) / 60), rem % 60, milli)
end

local function hex(s)
  return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))
end

-- Delete version v's frame and release what it referred to. Never the head's:
-- retention and prune drop the oldest, and the head is always the newest.
local function drop_version(v)
  local frame = redis.call('HGET', V, v)
  redis.call('HDEL', V, v)
  release(frame)
end

local function tags_json(tags)
  if type(tags) ~= 'table' or #tags == 0 then return '[]' end
  return cjson.encode(tags)
end

local function tags_of(t)
  if not t or t == '[]' then return {} end
  local ok, tags = pcall(cjson.decode, t)
  if ok and type(tags) == 'table' then return tags end
  return {}
end

local function head_tags()
  return tags_of(redis.call('HGET', S, 'tags'))
end

-- The readable metadata of a version, from its frame header. A header that
-- does not parse leaves the fields it cannot fill empty; loads report it.
local function head_fields(v, frame)
  local ok, h = pcall(cmsgpack.unpack, string.sub(frame, header_at(frame), payload_at(frame) - 1))
  if not ok or type(h) ~= 'table' then
    return {'version', v, 'stored_bytes', #frame, 'tags', '[]', 'updated_at', '',
      'size_bytes', '', 'compression_type', '', 'checksum', '', 'ttl', '', 'rolled_back_from', ''}, {}
  end
  local checksum
  local field = string.sub(frame, FRAME_PREFIX + 1, header_at(frame) - 1)
  if string.byte(frame, 5) == HMAC_SHA256_ID then
    local K = string.byte(field, 1) or 0
    checksum = 'hmac-sha256:' .. string.sub(field, 2, 1 + K) .. ':' .. hex(string.sub(field, 2 + K))
  else
    checksum = 'crc32:' .. hex(field)
  end
  local codec = kind_of(frame) == KIND_MANIFEST and h[8] or string.byte(frame, 4)
  local tags = type(h[5]) == 'table' and h[5] or {}
  return {'version', v, 'updated_at', iso(h[1]), 'size_bytes', h[2],
    'stored_bytes', stored_size(frame), 'compression_type', CODECS[codec] or 'unknown',
    'checksum', checksum, 'tags', tags_json(tags),
    'ttl', h[3] ~= 0 and h[3] or '', 'rolled_back_from', h[4] ~= 0 and h[4] or ''}, tags
end

local function update_tags(old, new)
  if TAGS_OUTSIDE then return end
  local keep = {}
  for _, t in ipairs(new) do
    keep[t] = true
    redis.call('SADD', TBASE .. t, SID)
  end
  for _, t in ipairs(old) do
    if not keep[t] then redis.call('SREM', TBASE .. t, SID) end
  end
end

-- Every key of a state gets the same expiry (ttl_ms '' for none), so a state
-- hash without one means no key has one: nothing to PERSIST. with_pieces
-- false: the caller knows C and R do not exist (they are left out).
local function apply_ttl(ttl_ms, with_pieces)
  local keys = with_pieces == false and {S, L, V, D} or KEYS
  if ttl_ms == '' then
    if redis.call('PTTL', S) == -1 then return end
    for i = 1, #keys do redis.call('PERSIST', keys[i]) end
  else
    for i = 1, #keys do redis.call('PEXPIRE', keys[i], ttl_ms) end
  end
end

local function delete_state()
  local tags = head_tags()
  redis.call('DEL', S, L, V, C, R, D)
  update_tags(tags, {})
end

-- The write-id record of wid in the memory string, or nil.
local function find_write(memory, wid)
  local at = 1
  while true do
    local p = string.find(memory, wid, at, true)
    if not p then return nil end
    if (p - 1) % WRITE_RECORD == 0 then
      return struct.unpack('>d', memory, p + WRITE_ID_SIZE)
    end
    at = p + 1
  end
end

-- The head is kept in the versions hash under HEAD, as a record: its number
-- and the state's creation time (two big-endian doubles), then its frame.
-- A reader of the head needs one plain HGET; older versions are fields
-- named by their numbers. A save moves the old head's frame to its number.
local function head_record(v, created, frame)
  return struct.pack('>dd', v, created) .. frame
end

-- The frame of version v (a number), head being the head's number. A head
-- without a record (a state written before records, by an unreleased 0.2
-- development build) is still read from its number rather than lost.
local function frame_of(v, head)
  if v == head then
    local record = redis.call('HGET', V, HEAD)
    if record then return string.sub(record, HEAD_PREFIX + 1) end
  end
  return redis.call('HGET', V, v)
end

-- The version a read asks for ('' the head) and its frame, with the state's
-- creation time: v, created_ms, frame; nil when there is no such state or
-- version; or the string 'legacy' for a 0.1 state.
local function read_version(asked)
  local cur = redis.call('HMGET', S, 'version', 'created_at_ms', 'fmt')
  if not cur[1] then return nil end
  if not cur[3] then return 'legacy' end
  local head = tonumber(cur[1])
  local v = asked == '' and head or tonumber(asked)
  local frame = frame_of(v, head)
  if not frame then return nil end
  return v, cur[2], frame
end
