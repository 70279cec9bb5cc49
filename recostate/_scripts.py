"""The server-side Lua scripts: every decision that must be atomic with a write.

Each per-state script takes the same first keys and arguments::

    KEYS[1] state hash   KEYS[2] version index   KEYS[3] write ids
    ARGV[1] version key base   ARGV[2] version key suffix
    ARGV[3] tag key base ('' when tag sets are kept outside the script, on a cluster)
    ARGV[4] state id

and builds version keys as ``base .. n .. suffix`` and tag keys as
``tag_base .. tag`` (see ``recostate._keys``). All keys a script touches share
the state's hash slot, except tag sets, which only standalone stores maintain
inside the script.

The frame header layout read here with ``struct`` and ``cmsgpack`` is the one
written by ``recostate._codec``. Scripts do every read and check before their
first write, because Redis does not roll a script back when it fails halfway.

Scripts are sent with EVALSHA and loaded again when the server answers
NOSCRIPT (after a restart or a failover), by the executor.
"""

from __future__ import annotations

import hashlib
import time
from typing import Final

__all__ = [
    "DELETE",
    "DELETE_VERSION",
    "LIST_VERSIONS",
    "LOAD",
    "METADATA",
    "PRUNE",
    "SAVE",
    "TAG_MEMBERS",
    "TOUCH",
    "WRITE_ID_MEMORY",
    "Script",
    "iso_utc",
    "save_fields",
]

#: How many recent write ids a state remembers, to recognise a retried save.
WRITE_ID_MEMORY: Final = 32


_last_second: tuple[int, str] = (-1, "")


def iso_utc(ms: int) -> str:
    """Return milliseconds since the epoch as the scripts' ``iso()`` spells them."""
    global _last_second
    secs, milli = divmod(ms, 1000)
    # Saves come many to a second: format the second once. One tuple, read and
    # replaced whole, so threads never pair a second with another's text.
    cached = _last_second
    if cached[0] != secs:
        t = time.gmtime(secs)
        cached = (
            secs,
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}",
        )
        _last_second = cached
    return f"{cached[1]}.{milli:03d}Z"


def save_fields(
    *,
    updated_at_ms: int,
    size_bytes: int,
    codec: str,
    checksum: str,
    ttl: int,
    rolled_back_from: int,
    tags: tuple[str, ...],
) -> list[str]:
    """Return the optional trailing arguments of :data:`SAVE`: the new head's readable fields.

    The same values the script would read from the frame header (``parse``
    and ``iso``), computed where they are known already; parsing them in Lua
    was a large share of a save's time in the server.
    """
    return [
        iso_utc(updated_at_ms),
        str(size_bytes),
        codec,
        checksum,
        str(ttl) if ttl else "",
        str(rolled_back_from) if rolled_back_from else "",
        *tags,
    ]


class Script:
    """A Lua script with its SHA-1, as EVALSHA needs it."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()

    def __repr__(self) -> str:
        return f"Script({self.name!r}, sha={self.sha[:12]})"


_COMMON = r"""
local S, I, W = KEYS[1], KEYS[2], KEYS[3]
local VBASE, VSUFFIX, TBASE, SID = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local CODECS = {[0] = 'none', [1] = 'lz4', [2] = 'zlib'}
local MAX_HEADER = 65536

local function vkey(n)
  return VBASE .. string.format('%d', tonumber(n)) .. VSUFFIX
end

local function head_version()
  return tonumber(redis.call('HGET', S, 'version') or '0')
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

-- The header of a frame (given whole, or its first bytes): codec, checksum, fields.
-- The checksum reads as recostate._codec writes it: 'crc32:<hex>', or for a
-- signed frame (algorithm 2) 'hmac-sha256:<key id>:<hex>'.
local function parse(frame)
  local L = string.byte(frame, 6)
  local H = struct.unpack('>I4', frame, 7)
  local field = string.sub(frame, 11, 10 + L)
  local checksum
  if string.byte(frame, 5) == 2 then
    local K = string.byte(field, 1) or 0
    checksum = 'hmac-sha256:' .. string.sub(field, 2, 1 + K) .. ':' .. hex(string.sub(field, 2 + K))
  elseif string.byte(frame, 5) == 1 then
    checksum = 'crc32:' .. hex(field)
  else
    checksum = 'unknown:' .. hex(field)
  end
  local h = cmsgpack.unpack(string.sub(frame, 11 + L, 10 + L + H))
  return CODECS[string.byte(frame, 4)] or 'unknown', checksum, h
end

-- The header bytes of a stored version, read without its payload.
local function header_of(key)
  local p = redis.call('GETRANGE', key, 0, 9)
  if #p < 10 then return p end
  local H = math.min(struct.unpack('>I4', p, 7), MAX_HEADER)
  return redis.call('GETRANGE', key, 0, 9 + string.byte(p, 6) + H)
end

-- On a cluster (TBASE is ''), a version the index lists whose key is absent is
-- a state caught halfway through a slot migration (its keys moved in several
-- MIGRATE calls): TRYAGAIN makes the client come back once the slot has moved,
-- rather than report the version missing.
local function migrating()
  return redis.error_reply('TRYAGAIN the state is being moved to another node')
end

local function tags_json(tags)
  if type(tags) ~= 'table' or #tags == 0 then return '[]' end
  return cjson.encode(tags)
end

local function tags_of(t)
  if not t then return {} end
  local ok, tags = pcall(cjson.decode, t)
  if ok and type(tags) == 'table' then return tags end
  return {}
end

local function head_tags()
  return tags_of(redis.call('HGET', S, 'tags'))
end

-- The readable metadata of the head, from its frame header. A header that does
-- not parse leaves the fields it cannot fill empty; loads report the corruption.
local function head_fields(v, frame, stored)
  local ok, codec, digest, h = pcall(parse, frame)
  if not ok or type(h) ~= 'table' then
    return {'version', v, 'stored_bytes', stored, 'tags', '[]', 'updated_at', '',
      'size_bytes', '', 'compression_type', '', 'checksum', '', 'ttl', '', 'rolled_back_from', ''}, {}
  end
  local tags = type(h[5]) == 'table' and h[5] or {}
  return {'version', v, 'updated_at', iso(h[1]), 'size_bytes', h[2], 'stored_bytes', stored,
    'compression_type', codec, 'checksum', digest, 'tags', tags_json(tags),
    'ttl', h[3] ~= 0 and h[3] or '', 'rolled_back_from', h[4] ~= 0 and h[4] or ''}, tags
end

local function update_tags(old, new)
  if TBASE == '' then return end
  local keep = {}
  for _, t in ipairs(new) do
    keep[t] = true
    redis.call('SADD', TBASE .. t, SID)
  end
  for _, t in ipairs(old) do
    if not keep[t] then redis.call('SREM', TBASE .. t, SID) end
  end
end

local function apply_ttl(ttl_ms)
  -- Every write and touch gives all keys of a state the same expiry, so a
  -- state hash without one means no key has one: nothing to PERSIST.
  if ttl_ms == '' and redis.call('PTTL', S) == -1 then return end
  local keys = {S, I, W}
  for _, v in ipairs(redis.call('ZRANGE', I, 0, -1)) do keys[#keys + 1] = vkey(v) end
  for _, k in ipairs(keys) do
    if ttl_ms == '' then redis.call('PERSIST', k) else redis.call('PEXPIRE', k, ttl_ms) end
  end
end

-- Remove versions[first..last] (ascending numbers) from the index and the keyspace.
local function drop_versions(versions)
  for _, v in ipairs(versions) do
    redis.call('DEL', vkey(v))
    redis.call('ZREM', I, v)
  end
end

local function delete_state()
  local tags = head_tags()
  local versions = redis.call('ZRANGE', I, 0, -1)
  for _, v in ipairs(versions) do redis.call('DEL', vkey(v)) end
  redis.call('DEL', S, I, W)
  update_tags(tags, {})
end
"""

#: ARGV[5] write id, [6] expected head ('' = none), [7] explicit version ('' = next),
#: [8] versions to keep, [9] ttl in ms ('' = none), [10] now in ms, [11] frame,
#: then optionally the frame's readable fields as :func:`save_fields` gives them
#: ([12] updated_at, [13] size_bytes, [14] codec, [15] checksum, [16] ttl,
#: [17] rolled_back_from, [18...] tags), which spares the script parsing the header.
#: Returns {'ok', version, created_at_ms} | {'dup', version, created_at_ms} | {'conflict', head}.
SAVE: Final = Script(
    "save",
    _COMMON
    + r"""
local wid, frame = ARGV[5], ARGV[11]
local done = redis.call('ZSCORE', W, wid)
if done then
  return {'dup', tonumber(done), redis.call('HGET', S, 'created_at_ms') or ARGV[10]}
end
-- One read of the state hash for everything the write decides on.
local cur = redis.call('HMGET', S, 'version', 'last', 'created_at_ms', 'tags')
local head = tonumber(cur[1] or '0')
local last = tonumber(cur[2] or '0')
if ARGV[6] ~= '' and tonumber(ARGV[6]) ~= head then return {'conflict', head} end
local v
if ARGV[7] ~= '' then
  v = tonumber(ARGV[7])
  if v <= head or v <= last then return {'conflict', head} end
else
  v = math.max(head, last) + 1
end
local old_tags = tags_of(cur[4])
local created = cur[3]
local fields, new_tags
if ARGV[12] then
  new_tags = {}
  for i = 18, #ARGV do new_tags[#new_tags + 1] = ARGV[i] end
  fields = {'version', v, 'updated_at', ARGV[12], 'size_bytes', ARGV[13], 'stored_bytes', #frame,
    'compression_type', ARGV[14], 'checksum', ARGV[15], 'tags', tags_json(new_tags),
    'ttl', ARGV[16], 'rolled_back_from', ARGV[17]}
else
  fields, new_tags = head_fields(v, frame, #frame)
end

redis.call('SET', vkey(v), frame)
redis.call('ZADD', I, v, v)
if not created then
  created = ARGV[10]
  redis.call('HSET', S, 'state_id', SID, 'created_at', iso(tonumber(created)), 'created_at_ms', created)
end
redis.call('HSET', S, 'last', v, unpack(fields))
redis.call('ZADD', W, v, wid)
redis.call('ZREMRANGEBYRANK', W, 0, -(%(memory)d + 1))
local keep = tonumber(ARGV[8])
local n = redis.call('ZCARD', I)
if n > keep then drop_versions(redis.call('ZRANGE', I, 0, n - keep - 1)) end
apply_ttl(ARGV[9])
update_tags(old_tags, new_tags)
return {'ok', v, created}
""".replace("%(memory)d", str(WRITE_ID_MEMORY)),
)

#: ARGV[5] version ('' = head). Returns nil | {version, created_at_ms, frame}.
LOAD: Final = Script(
    "load",
    _COMMON
    + r"""
local head = head_version()
if head == 0 then return false end
local v = ARGV[5] == '' and head or tonumber(ARGV[5])
local frame = redis.call('GET', vkey(v))
if not frame then
  if TBASE == '' and redis.call('ZSCORE', I, v) then return migrating() end
  return false
end
return {v, redis.call('HGET', S, 'created_at_ms'), frame}
""",
)

#: ARGV[5] version ('' = head). Returns nil | {version, created_at_ms, header, stored size}.
METADATA: Final = Script(
    "metadata",
    _COMMON
    + r"""
local head = head_version()
if head == 0 then return false end
local v = ARGV[5] == '' and head or tonumber(ARGV[5])
local key = vkey(v)
local size = redis.call('STRLEN', key)
-- An empty value is a damaged version, not a missing one: the reader reports it.
if size == 0 and redis.call('EXISTS', key) == 0 then
  if TBASE == '' and redis.call('ZSCORE', I, v) then return migrating() end
  return false
end
return {v, redis.call('HGET', S, 'created_at_ms'), header_of(key), size}
""",
)

#: Returns {created_at_ms, {version, header, stored size}...} oldest first, or {}.
LIST_VERSIONS: Final = Script(
    "list_versions",
    _COMMON
    + r"""
local created = redis.call('HGET', S, 'created_at_ms')
if not created then return {} end
local out = {created}
for _, v in ipairs(redis.call('ZRANGE', I, 0, -1)) do
  local key = vkey(v)
  local size = redis.call('STRLEN', key)
  if size > 0 or redis.call('EXISTS', key) == 1 then
    out[#out + 1] = {tonumber(v), header_of(key), size}
  end
end
return out
""",
)

#: ARGV[5] version. Returns 1 if it existed, else 0.
DELETE_VERSION: Final = Script(
    "delete_version",
    _COMMON
    + r"""
local v = tonumber(ARGV[5])
if not redis.call('ZSCORE', I, v) then return 0 end
local head = head_version()
local remaining = redis.call('ZCARD', I) - 1
if remaining == 0 then
  delete_state()
  return 1
end
local fields, new_tags, old_tags
if v == head then
  local newest = redis.call('ZRANGE', I, -2, -1)[1]
  local key = vkey(newest)
  fields, new_tags = head_fields(tonumber(newest), header_of(key), redis.call('STRLEN', key))
  old_tags = head_tags()
end
drop_versions({v})
if fields then
  redis.call('HSET', S, unpack(fields))
  update_tags(old_tags, new_tags)
end
return 1
""",
)

#: ARGV[5] versions to keep (0 deletes the state). Returns the number removed.
PRUNE: Final = Script(
    "prune",
    _COMMON
    + r"""
local keep = tonumber(ARGV[5])
local n = redis.call('ZCARD', I)
if n <= keep then return 0 end
if keep == 0 then
  delete_state()
  return n
end
drop_versions(redis.call('ZRANGE', I, 0, n - keep - 1))
return n - keep
""",
)

#: Returns 1 if the state existed, else 0.
DELETE: Final = Script(
    "delete",
    _COMMON
    + r"""
if redis.call('EXISTS', S) == 0 then return 0 end
delete_state()
return 1
""",
)

#: ARGV[5] ttl in ms ('' = no expiry). Returns 1 if the state existed, else 0.
TOUCH: Final = Script(
    "touch",
    _COMMON
    + r"""
if redis.call('EXISTS', S) == 0 then return 0 end
apply_ttl(ARGV[5])
return 1
""",
)

#: KEYS[1] tag set. ARGV[1] state key head ("P:{"), [2] state key middle ("}:s:"),
#: [3] tag, [4] SSCAN cursor, [5] SSCAN count.
#: Returns {next cursor, {ids whose head carries the tag}}; drops the other members.
TAG_MEMBERS: Final = Script(
    "tag_members",
    r"""
local page = redis.call('SSCAN', KEYS[1], ARGV[4], 'COUNT', ARGV[5])
local live = {}
for _, id in ipairs(page[2]) do
  local s = ARGV[1] .. string.sub(redis.sha1hex(id), 1, 16) .. ARGV[2] .. id
  local found = false
  local t = redis.call('HGET', s, 'tags')
  if t then
    local ok, tags = pcall(cjson.decode, t)
    if ok and type(tags) == 'table' then
      for _, tag in ipairs(tags) do
        if tag == ARGV[3] then found = true break end
      end
    end
  end
  if found then live[#live + 1] = id else redis.call('SREM', KEYS[1], id) end
end
return {page[1], live}
""",
)
