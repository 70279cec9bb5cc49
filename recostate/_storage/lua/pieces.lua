-- The chunk store: pieces (chunks and manifest nodes) kept once per state (or
-- thread) in a hash C, their reference counts in a hash R, and a compression
-- dictionary in C's fields 'd' (its frame) and 'i' (its id). The script that
-- includes this binds C and R first. A manifest's frame (a chunked version, a
-- node) names its pieces in its payload (recostate._codec.manifest).

local function kind_of(frame)
  return string.byte(frame, 3)
end

-- 1-based index of a frame's header, and of its payload. A damaged frame
-- (stored bytes are never trusted here) gives indexes past its end.
local function header_at(frame)
  if #frame < FRAME_PREFIX then return #frame + 1 end
  return FRAME_PREFIX + 1 + string.byte(frame, 6)
end
local function payload_at(frame)
  if #frame < FRAME_PREFIX then return #frame + 1 end
  return header_at(frame) + struct.unpack('>I4', frame, 7)
end

-- The piece ids a manifest or node frame refers to (recostate._codec.manifest);
-- none for a frame too damaged to name them.
local function refs_of(frame)
  local p = payload_at(frame)
  if p + 3 > #frame then return {} end
  local n = struct.unpack('>I4', frame, p)
  if p + 3 + n * ID_SIZE > #frame then return {} end
  local out = {}
  for i = 0, n - 1 do
    out[i + 1] = string.sub(frame, p + 4 + i * ID_SIZE, p + 3 + (i + 1) * ID_SIZE)
  end
  return out
end

-- The header bytes of a version frame (everything before its payload).
local function head_of(frame)
  return string.sub(frame, 1, math.min(payload_at(frame) - 1, #frame))
end

local function stored_size(frame)
  if kind_of(frame) == KIND_MANIFEST then
    local ok, h = pcall(cmsgpack.unpack, string.sub(frame, header_at(frame), payload_at(frame) - 1))
    if ok and type(h) == 'table' and tonumber(h[6]) then return h[6] end
  end
  return #frame
end

local function incref(id)
  redis.call('HINCRBY', R, id, 1)
end

-- One reference fewer; a piece nothing refers to any more goes, and so do
-- the references it held. An id with no count (named by a damaged frame)
-- is left alone rather than counted below zero.
local function decref(id)
  if redis.call('HEXISTS', R, id) == 0 then return end
  if redis.call('HINCRBY', R, id, -1) > 0 then return end
  local frame = redis.call('HGET', C, id)
  redis.call('HDEL', C, id)
  redis.call('HDEL', R, id)
  if frame and kind_of(frame) == KIND_NODE then
    for _, child in ipairs(refs_of(frame)) do decref(child) end
  end
end

-- Once no piece is left, the dictionary (and the hash holding it) goes too.
local function collect_dictionary()
  if redis.call('EXISTS', C) == 1 and redis.call('HLEN', R) == 0 then
    redis.call('DEL', C, R)
  end
end

-- Check the dictionary new chunks were compressed with (dict_id, '' for none;
-- its frame dict_frame when it is sent). Returns the id the state holds
-- (false when none), and nil when the dictionary is stored or may be, else
-- the reply to give: {'missing'} | {'dict', the stored dictionary}.
local function check_dictionary(dict_id, dict_frame)
  if dict_id == '' then return false, nil end
  local have = redis.call('HGET', C, 'i')
  if have and have ~= dict_id then return have, {'dict', redis.call('HGET', C, 'd')} end
  if not have and dict_frame == '' then return false, {'missing'} end
  return have, nil
end

-- Check and store what a manifest frame needs, sent with it as (id, frame)
-- pairs in ARGV[first..]: the dictionary its new chunks use (dict_id; its
-- frame dict_frame when sent), and every piece it names, stored or sent.
-- Every check comes before the first write. Returns nil once stored and
-- referenced, or the reply to give: {'missing'} | {'dict', the stored dictionary}.
local function put_pieces(frame, dict_id, dict_frame, first)
  local have, refused = check_dictionary(dict_id, dict_frame)
  if refused then return refused end
  local sent, fresh = {}, {}
  for i = first, #ARGV, 2 do sent[ARGV[i]] = ARGV[i + 1] end
  local function present(id)
    return sent[id] ~= nil or redis.call('HEXISTS', C, id) == 1
  end
  for _, id in ipairs(refs_of(frame)) do
    if not present(id) then return {'missing'} end
  end
  for i = first, #ARGV, 2 do
    local id, piece = ARGV[i], ARGV[i + 1]
    if redis.call('HEXISTS', C, id) == 0 then
      fresh[#fresh + 1] = i
      if kind_of(piece) == KIND_NODE then
        for _, child in ipairs(refs_of(piece)) do
          if not present(child) then return {'missing'} end
        end
      end
    end
  end
  if dict_id ~= '' and not have then redis.call('HSET', C, 'd', dict_frame, 'i', dict_id) end
  for _, i in ipairs(fresh) do redis.call('HSET', C, ARGV[i], ARGV[i + 1]) end
  for _, i in ipairs(fresh) do
    if kind_of(ARGV[i + 1]) == KIND_NODE then
      for _, child in ipairs(refs_of(ARGV[i + 1])) do incref(child) end
    end
  end
  for _, id in ipairs(refs_of(frame)) do incref(id) end
  return nil
end

-- Release what a frame refers to, if it is a manifest.
local function release(frame)
  if frame and kind_of(frame) == KIND_MANIFEST then
    for _, id in ipairs(refs_of(frame)) do decref(id) end
  end
end

local function is_node(id)
  return string.byte(id, 1) >= 128
end

-- HMGET of ids, in slices (unpack() has a limit on how many values it spreads).
local function hmget(ids)
  local found = {}
  for first = 1, #ids, 1000 do
    local slice = {unpack(ids, first, math.min(first + 999, #ids))}
    for _, piece in ipairs(redis.call('HMGET', C, unpack(slice))) do found[#found + 1] = piece end
  end
  return found
end

-- Append to out, as (id, frame or false) pairs, the pieces a manifest frame
-- names, through its nodes, but those whose ids are in ARGV[skip_from..] (the
-- reader holds them; a node it holds stands for everything under it). Nodes
-- always come; chunks come too when they are at most inline_max, else their
-- ids are returned for the reader to fetch with a plain HMGET (copying many
-- chunks through Lua costs the server far more than HMGET does).
local function read_pieces(frame, skip_from, out, inline_max)
  local seen = {}
  for i = skip_from, #ARGV do seen[ARGV[i]] = true end
  local chunks = {}
  local wanted = refs_of(frame)
  while #wanted > 0 do
    local nodes = {}
    for _, id in ipairs(wanted) do
      if not seen[id] then
        seen[id] = true
        if is_node(id) then nodes[#nodes + 1] = id else chunks[#chunks + 1] = id end
      end
    end
    wanted = {}
    for i, piece in ipairs(hmget(nodes)) do
      out[#out + 1] = nodes[i]
      out[#out + 1] = piece or false
      if piece then
        for _, child in ipairs(refs_of(piece)) do wanted[#wanted + 1] = child end
      end
    end
  end
  if #chunks > inline_max then return chunks end
  for i, piece in ipairs(hmget(chunks)) do
    out[#out + 1] = chunks[i]
    out[#out + 1] = piece or false
  end
  return {}
end
