"""How LangGraph threads are laid out in Redis: key names, field names, records, scripts.

With ``P`` the store's ``key_prefix``, ``H`` the first 16 hex digits of SHA-1
over the UTF-8 bytes of the thread id, and ``<tid>`` the thread id itself,
every thread has at most five keys::

    P:lg:{H}:h:<tid>   hash   checkpoint records and pending writes
    P:lg:{H}:z:<tid>   zset   the index (all scores 0, read in lex order)
    P:lg:{H}:b:<tid>   hash   channel values, owned by the blob store (_blobs)
    P:lg:{H}:c:<tid>   hash   the chunks and manifest nodes of those values
    P:lg:{H}:r:<tid>   hash   their reference counts (the chunk store's)

Why this shape:

* ``{H}`` is a Redis Cluster hash tag: every key of a thread, all its
  namespaces, checkpoints, values and writes, lives in one slot, so each
  operation on a thread is one script on one node, atomic. It is a digest
  because a thread id may contain braces. The id is kept whole at the end of
  each key, so two threads never share a key even if their digests collide.
* ``lg`` sets the checkpointer's keys apart from the store's own states
  (``P:{H}:s:<id>``), so neither ever lists the other, and an ACL user limited
  to ``~P*`` can run everything.
* A fixed, small number of keys per thread, whatever its history: applying
  the TTL is five ``PEXPIRE`` calls on every write, and deleting a thread is
  one ``DEL``.

Inside those keys, with ``T(s)`` the byte length of ``s``, then ``|``, then ``s``
(a tag that no other string starts with), ``ns`` the checkpoint namespace,
``cid`` a checkpoint id and ``K = T(ns) cid`` a checkpoint's key::

    index member / hash field       what
    c K                             a checkpoint (hash value: its record)
    w T(ns) T(cid) | idx | task     a pending write (hash value: its item, then its frame)
    u T(run_id) K                   checkpoint K was written by that run
    d                               the thread has used a DeltaChannel

    blob field (blob store): T(ns) T(channel) | version

Members of one namespace are contiguous in lex order and sorted by checkpoint
id, which LangGraph's ids (UUIDv6) make oldest first, so the newest
checkpoint, a page before a given id, a checkpoint's writes and a run's
checkpoints are each one ``ZRANGEBYLEX``. Nothing is ever found with ``KEYS``;
only the calls that span every thread (``list(None)``, ``delete_for_runs``)
``SCAN`` for the index keys.

The module is long because it holds every script of the checkpointer beside
the Python that builds their keys and arguments, so one file says all of the
layout.

A checkpoint record starts with length-prefixed items the scripts read
(``<n>:<bytes>``): parent id, run id, the root checkpoint a subgraph call
started from, flags (``d``: the thread has used a DeltaChannel; ``z``: the
body is LZ4-compressed, its size first in four bytes), the number of blob
fields, the blob fields; the rest, the body, is the serialized checkpoint and
metadata, which only Python reads. A pending
write is one such item (task id, channel, serializer type, task path and
index, in msgpack), then the frame of its value (``_blobs``), whose chunks the
thread's chunk store shares with its channel values.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from typing import Final

import msgspec

from recostate._codec.compression import compress, decompress
from recostate._storage.scripts import assemble, pieces_source
from recostate._types import CompressionType
from recostate.contrib.langgraph import _blobs
from recostate.contrib.langgraph._backend import Script

__all__ = [
    "COPY_IN",
    "COPY_OUT",
    "DELETE_RUNS",
    "DELETE_THREAD",
    "PRUNE",
    "PUT",
    "PUT_WRITES",
    "RANGE",
    "READ",
    "RecordHead",
    "ThreadKeys",
    "Write",
    "blob_channel",
    "blob_field",
    "checkpoint_key",
    "encode_record",
    "ns_tag",
    "parse_record",
    "parse_write",
    "split_checkpoint_key",
    "thread_pattern",
    "thread_from_index_key",
    "write_field",
    "write_item",
]

HASH_TAG_LENGTH: Final = 16
_MARK: Final = b":lg:{"
_INDEX_KIND: Final = "z"
#: Kind letters of a thread's keys, in the order the scripts take them (KEYS[1..]).
KINDS: Final = ("h", _INDEX_KIND, *_blobs.KEY_KINDS)


def _encode(text: str) -> bytes:
    # surrogatepass keeps every Python str encodable, one-to-one.
    return text.encode("utf-8", "surrogatepass")


def _tag(raw: bytes) -> bytes:
    return str(len(raw)).encode("ascii") + b"|" + raw


class ThreadKeys:
    """The keys of one thread, in script order (``KEYS[1]`` hash, ``[2]`` index, then the blob store's)."""

    __slots__ = ("all", "thread_id")

    def __init__(self, prefix: str, thread_id: str) -> None:
        raw = _encode(thread_id)
        digest = hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:HASH_TAG_LENGTH]
        base = _encode(prefix) + _MARK + digest.encode("ascii") + b"}:"
        self.thread_id = thread_id
        self.all = [base + kind.encode("ascii") + b":" + raw for kind in KINDS]


def thread_pattern(prefix: str) -> bytes:
    """Return the SCAN ``MATCH`` pattern of every thread's index key under ``prefix``."""
    escaped = bytearray()
    for byte in _encode(prefix):
        if byte in b"*?[]\\":
            escaped += b"\\"
        escaped.append(byte)
    return bytes(escaped) + _MARK + b"?" * HASH_TAG_LENGTH + b"}:" + _INDEX_KIND.encode() + b":*"


def thread_from_index_key(prefix: str, key: bytes) -> str:
    """Return the thread id an index key names."""
    start = len(_encode(prefix)) + len(_MARK) + HASH_TAG_LENGTH + 4
    return key[start:].decode("utf-8", "surrogatepass")


def ns_tag(checkpoint_ns: str) -> bytes:
    """Return the tag of a namespace: the start of all its checkpoints' keys."""
    return _tag(_encode(checkpoint_ns))


def checkpoint_key(checkpoint_ns: str, checkpoint_id: str) -> bytes:
    """Return the key ``K`` of a checkpoint (index member and record field without ``c``)."""
    return ns_tag(checkpoint_ns) + _encode(checkpoint_id)


def split_checkpoint_key(key: bytes) -> tuple[str, str]:
    """Return the ``(checkpoint_ns, checkpoint_id)`` a checkpoint key names."""
    bar = key.index(b"|")
    end = bar + 1 + int(key[:bar])
    return (
        key[bar + 1 : end].decode("utf-8", "surrogatepass"),
        key[end:].decode("utf-8", "surrogatepass"),
    )


def write_field(checkpoint_ns: str, checkpoint_id: str, task_id: str, idx: int) -> bytes:
    """Return the field (and index member) of one pending write."""
    return (
        b"w"
        + ns_tag(checkpoint_ns)
        + _tag(_encode(checkpoint_id))
        + b"|"
        + str(idx).encode("ascii")
        + b"|"
        + _encode(task_id)
    )


def blob_field(checkpoint_ns: str, channel: str, version: str | int | float) -> bytes:
    """Return the blob field of one channel value at one version."""
    return ns_tag(checkpoint_ns) + _tag(_encode(channel)) + b"|" + _encode(str(version))


def blob_channel(field: bytes) -> str:
    """Return the channel a blob field names."""
    bar = field.index(b"|")
    start = bar + 1 + int(field[:bar])
    bar = field.index(b"|", start)
    end = bar + 1 + int(field[start:bar])
    return field[bar + 1 : end].decode("utf-8", "surrogatepass")


#: The size of a compressed record body, before it.
_BODY_SIZE: Final = struct.Struct(">I")


def _item(raw: bytes) -> bytes:
    return str(len(raw)).encode("ascii") + b":" + raw


def encode_record(
    *,
    parent_id: str | None,
    run_id: str,
    root_id: str,
    delta: bool,
    blobs: Iterable[bytes],
    body: bytes,
) -> bytes:
    """Return a checkpoint record: the items the scripts read, then ``body``.

    ``body`` is stored LZ4-compressed (flag ``z``, then its size in four
    bytes) when that makes it smaller: a thread keeps every checkpoint's
    record, and their channel versions and node names repeat within each.
    """
    fields = list(blobs)
    flags = b"d" if delta else b""
    codec, packed = compress(CompressionType.LZ4, body)
    if codec is CompressionType.LZ4 and len(packed) + _BODY_SIZE.size < len(body):
        flags += b"z"
        body = _BODY_SIZE.pack(len(body)) + bytes(packed)
    head = [
        _item(_encode(parent_id or "")),
        _item(_encode(run_id)),
        _item(_encode(root_id)),
        _item(flags),
        _item(str(len(fields)).encode("ascii")),
        *(_item(field) for field in fields),
    ]
    return b"".join(head) + body


class RecordHead:
    """The items at the start of a checkpoint record that Python needs."""

    __slots__ = ("blobs", "body", "parent_id")

    def __init__(self, parent_id: str | None, blobs: list[bytes], body: memoryview) -> None:
        self.parent_id = parent_id
        self.blobs = blobs
        self.body = body


def parse_record(value: bytes) -> RecordHead:
    """Split a checkpoint record into its parent id, blob fields and body."""
    view = memoryview(value)
    pos = 0
    items: list[bytes] = []
    count = 5
    while len(items) < count:
        colon = value.index(b":", pos)
        size = int(value[pos:colon])
        items.append(value[colon + 1 : colon + 1 + size])
        pos = colon + 1 + size
        if len(items) == 5:
            count = 5 + int(items[4])
    parent = items[0].decode("utf-8", "surrogatepass") or None
    body = view[pos:]
    if b"z" in items[3]:
        (size,) = _BODY_SIZE.unpack_from(body)
        body = memoryview(decompress(CompressionType.LZ4, body[_BODY_SIZE.size :], size))
    return RecordHead(parent, items[5:], body)


class Write(msgspec.Struct, array_like=True, frozen=True):
    """The item at the start of a pending write: what the write is, without its value.

    Attributes:
        task_id, channel, type_, task_path, idx: as LangGraph gives them
            (``type_``: the serializer's type name of the value).
        frame: the frame of the value (filled by :func:`parse_write`).
    """

    task_id: str
    channel: str
    type_: str
    task_path: str
    idx: int
    frame: bytes = b""


_write_decoder = msgspec.msgpack.Decoder(Write)


def write_item(task_id: str, channel: str, type_: str, task_path: str, idx: int) -> bytes:
    """Return the item a pending write starts with (its value's frame follows it)."""
    return _item(msgspec.msgpack.encode((task_id, channel, type_, task_path, idx)))


def parse_write(value: bytes) -> Write:
    """Split a stored pending write into its item and its value's frame."""
    colon = value.index(b":")
    end = colon + 1 + int(value[:colon])
    write = _write_decoder.decode(value[colon + 1 : end])
    return msgspec.structs.replace(write, frame=value[end:])


_NAMES = ("H", "Z", *_blobs.KEY_NAMES)
_KEYS = f"local {', '.join(_NAMES)} = {', '.join(f'KEYS[{i}]' for i in range(1, len(_NAMES) + 1))}\n"

_PRELUDE = r"""
local HIGH = '\255'
local BATCH = 500

-- Run cmd on key with the items of list, BATCH at a time (unpack has a limit).
local function batched(cmd, key, list)
  for i = 1, #list, BATCH do
    local args = {}
    for j = i, math.min(i + BATCH - 1, #list) do args[#args + 1] = list[j] end
    redis.call(cmd, key, unpack(args))
  end
end

local function read_item(s, pos)
  local colon = string.find(s, ':', pos, true)
  local n = tonumber(string.sub(s, pos, colon - 1))
  return string.sub(s, colon + 1, colon + n), colon + n + 1
end

-- The items at the start of a checkpoint record (see the layout docstring).
local function record_head(s)
  local r, pos = {}, 1
  r.parent, pos = read_item(s, pos)
  r.run, pos = read_item(s, pos)
  r.root, pos = read_item(s, pos)
  r.flags, pos = read_item(s, pos)
  local count
  count, pos = read_item(s, pos)
  r.blobs = {}
  for i = 1, tonumber(count) do r.blobs[i], pos = read_item(s, pos) end
  r.parent_end = #tostring(#r.parent) + 1 + #r.parent
  return r
end

local function tag(s)
  return #s .. '|' .. s
end

local function ns_tag_of(k)
  local digits = string.match(k, '^%d+')
  return string.sub(k, 1, #digits + 1 + tonumber(digits))
end

local function writes_prefix(k)
  local t = ns_tag_of(k)
  return 'w' .. t .. tag(string.sub(k, #t + 1)) .. '|'
end

local function members(prefix)
  return redis.call('ZRANGEBYLEX', Z, '[' .. prefix, '[' .. prefix .. HIGH)
end

local function expire(ttl)
  if ttl > 0 then
    for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ttl) end
  end
end

-- The frame of a pending write's value (after the item that describes it).
local function write_frame(value)
  local _, pos = read_item(value, 1)
  return string.sub(value, pos)
end

-- The pending writes of checkpoint k; the pieces their frames name go to
-- pieces (see blob_pieces).
local function pending_writes(k, seen, pieces)
  local ws = members(writes_prefix(k))
  if #ws == 0 then return {} end
  local out = {}
  for i = 1, #ws, BATCH do
    local part = {}
    for j = i, math.min(i + BATCH - 1, #ws) do part[#part + 1] = ws[j] end
    for _, v in ipairs(redis.call('HMGET', H, unpack(part))) do
      out[#out + 1] = v
      if v then
        local frame = write_frame(v)
        if kind_of(frame) == KIND_MANIFEST then blob_pieces(frame, seen, pieces) end
      end
    end
  end
  return out
end

-- Remove checkpoint k with its writes, its run entry and its references to blobs.
local function drop_checkpoint(k)
  local value = redis.call('HGET', H, 'c' .. k)
  if value then
    local r = record_head(value)
    for _, f in ipairs(r.blobs) do blob_unref(f) end
    if r.run ~= '' then redis.call('ZREM', Z, 'u' .. tag(r.run) .. k) end
    redis.call('HDEL', H, 'c' .. k)
  end
  redis.call('ZREM', Z, 'c' .. k)
  local ws = members(writes_prefix(k))
  for _, f in ipairs(ws) do
    local write = redis.call('HGET', H, f)
    if write then release(write_frame(write)) end
  end
  batched('HDEL', H, ws)
  batched('ZREM', Z, ws)
  collect_dictionary()
end
"""


def _script(name: str, body: str) -> Script:
    # The chunk store's helpers (bound to C and R) and the blob store's come
    # first; assemble() keeps only the definitions the script reaches.
    library = _KEYS + pieces_source() + _blobs.LUA + _PRELUDE
    return Script(f"langgraph.{name}", assemble(library, body))


#: Store a checkpoint: ARGV ttl_ms, K, record, then the new blob values as
#: ``_blobs.BlobCodec.encode`` gives them (n, n fields, n values, dictionary
#: id, dictionary frame, piece id and frame pairs). Replies ``ok``; or, having
#: written nothing, ``{'missing', fields}`` (blobs the record refers to that
#: are neither stored nor sent), ``{'pieces'}`` (a piece a value names is
#: neither stored nor sent) or ``{'dict', frame}`` (the thread holds another
#: compression dictionary: that one).
PUT: Final = _script(
    "put",
    r"""
local ttl, k, value = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local r = record_head(value)
local n = tonumber(ARGV[4])
local fields, values, sent = {}, {}, {}
for j = 1, n do
  fields[j], values[j] = ARGV[4 + j], ARGV[4 + n + j]
  sent[fields[j]] = true
end
local check = {}
for _, f in ipairs(r.blobs) do
  if not sent[f] then check[#check + 1] = f end
end
local missing = blob_missing(check)
if #missing > 0 then return {'missing', missing} end
local refused = blob_put_all(fields, values, ARGV[5 + 2 * n], ARGV[6 + 2 * n], 7 + 2 * n)
if refused then return refused end
for _, f in ipairs(r.blobs) do blob_ref(f) end
local old = redis.call('HGET', H, 'c' .. k)
if old then
  -- A retried or repeated put: its references are replaced, never added twice.
  local before = record_head(old)
  for _, f in ipairs(before.blobs) do blob_unref(f) end
  if before.run ~= '' then redis.call('ZREM', Z, 'u' .. tag(before.run) .. k) end
end
redis.call('HSET', H, 'c' .. k, value)
redis.call('ZADD', Z, 0, 'c' .. k)
if r.run ~= '' then redis.call('ZADD', Z, 0, 'u' .. tag(r.run) .. k) end
if string.find(r.flags, 'd', 1, true) then redis.call('ZADD', Z, 0, 'd') end
expire(ttl)
return 'ok'
""",
)

#: Store pending writes: ARGV ttl_ms, m, then m (field, value, upsert)
#: triples, then the tail ``_blobs.BlobCodec.encode`` gives (dictionary id,
#: dictionary frame, piece id and frame pairs). A write whose field exists is
#: left alone unless upsert is '1' (special writes); within one call, the last
#: upsert of a field wins. Replies ``ok``, or (having written nothing)
#: ``{'pieces'}`` | ``{'dict', frame}`` as PUT does.
PUT_WRITES: Final = _script(
    "put_writes",
    r"""
local ttl, m = tonumber(ARGV[1]), tonumber(ARGV[2])
local order, chosen, olds = {}, {}, {}
for j = 0, m - 1 do
  local i = 3 + 3 * j
  local f = ARGV[i]
  if chosen[f] == nil then
    local old = redis.call('HGET', H, f)
    if not old or ARGV[i + 2] == '1' then
      order[#order + 1] = f
      chosen[f] = i
      if old then olds[#olds + 1] = old end
    else
      chosen[f] = false
    end
  elseif chosen[f] and ARGV[i + 2] == '1' then
    chosen[f] = i
  end
end
local frames = {}
for _, f in ipairs(order) do frames[#frames + 1] = write_frame(ARGV[chosen[f] + 1]) end
local tail = 3 + 3 * m
local refused = blob_pieces_put(frames, ARGV[tail], ARGV[tail + 1], tail + 2)
if refused then return refused end
for _, f in ipairs(order) do
  redis.call('HSET', H, f, ARGV[chosen[f] + 1])
  redis.call('ZADD', Z, 0, f)
end
-- Released after the new frames took their references: a piece both share stays.
for _, old in ipairs(olds) do release(write_frame(old)) end
if #olds > 0 then collect_dictionary() end
expire(ttl)
return 'ok'
""",
)

#: Load checkpoints whole: ARGV 'latest', namespace tag (the newest of that
#: namespace) or 'ids', K... Replies {entries, pieces, dictionary}: one entry
#: per checkpoint, false when it is absent, else {K, record, blob values,
#: pending writes}; the pieces the values' manifests name, each once, as id
#: and frame pairs; the thread's dictionary frame (false when none was needed).
READ: Final = _script(
    "read",
    r"""
local ks
if ARGV[1] == 'latest' then
  ks = redis.call('ZREVRANGEBYLEX', Z, '[c' .. ARGV[2] .. HIGH, '[c' .. ARGV[2], 'LIMIT', 0, 1)
  for i, m in ipairs(ks) do ks[i] = string.sub(m, 2) end
else
  ks = {}
  for i = 2, #ARGV do ks[#ks + 1] = ARGV[i] end
end
local out, seen, pieces = {}, {}, {}
for i, k in ipairs(ks) do
  local value = redis.call('HGET', H, 'c' .. k)
  if value then
    local values = blob_read(record_head(value).blobs, seen, pieces)
    out[i] = {k, value, values, pending_writes(k, seen, pieces)}
  else
    out[i] = false
  end
end
local dictionary = false
if #pieces > 0 then dictionary = redis.call('HGET', C, 'd') end
return {out, pieces, dictionary}
""",
)

#: Page through checkpoint records, newest first: ARGV 'ns', namespace tag,
#: before id ('' for none), count -> {K, record, ...}; or 'all' -> every K.
RANGE: Final = _script(
    "range",
    r"""
if ARGV[1] == 'all' then
  local out = {}
  for i, m in ipairs(members('c')) do out[i] = string.sub(m, 2) end
  return out
end
local t, before, count = ARGV[2], ARGV[3], tonumber(ARGV[4])
local high = before ~= '' and ('(c' .. t .. before) or ('[c' .. t .. HIGH)
local ms = redis.call('ZREVRANGEBYLEX', Z, high, '[c' .. t, 'LIMIT', 0, count)
local out = {}
for _, m in ipairs(ms) do
  local k = string.sub(m, 2)
  out[#out + 1] = k
  out[#out + 1] = redis.call('HGET', H, 'c' .. k) or ''
end
return out
""",
)

#: Delete the checkpoints (with their writes) of the runs in ARGV; replies how many.
DELETE_RUNS: Final = _script(
    "delete_runs",
    r"""
local dropped = 0
for _, run in ipairs(ARGV) do
  local prefix = 'u' .. tag(run)
  for _, m in ipairs(members(prefix)) do
    drop_checkpoint(string.sub(m, #prefix + 1))
    dropped = dropped + 1
  end
end
return dropped
""",
)

#: Keep the newest checkpoint of each namespace. ARGV[1] 'check' only tells
#: whether the thread may be pruned; 'run' prunes it. Replies 'delta' (and
#: changes nothing) for a thread that has used a DeltaChannel, else 'ok'.
PRUNE: Final = _script(
    "prune",
    r"""
if redis.call('ZSCORE', Z, 'd') then return 'delta' end
if ARGV[1] == 'check' then return 'ok' end
local groups, order = {}, {}
for _, m in ipairs(members('c')) do
  local k = string.sub(m, 2)
  local t = ns_tag_of(k)
  if not groups[t] then groups[t] = {}; order[#order + 1] = t end
  local g = groups[t]
  g[#g + 1] = k
end
local root = '0|'
local root_head = groups[root] and groups[root][#groups[root]]
-- Decide before deleting anything: a subgraph call's namespace (its task id
-- after a ':') goes with the root checkpoint it started from, when that one
-- is saved and is not the one kept.
local whole = {}
for _, t in ipairs(order) do
  local g = groups[t]
  local ns = string.sub(t, #string.match(t, '^%d+') + 2)
  if string.find(ns, ':', 1, true) then
    local r = record_head(redis.call('HGET', H, 'c' .. g[#g]))
    local started = root .. r.root
    if r.root ~= '' and started ~= root_head
      and redis.call('HEXISTS', H, 'c' .. started) == 1 then
      whole[t] = true
    end
  end
end
for _, t in ipairs(order) do
  local g = groups[t]
  local last = whole[t] and #g or #g - 1
  for j = 1, last do drop_checkpoint(g[j]) end
  if not whole[t] then
    -- The kept checkpoint's parent is gone: it is left with none.
    local head = g[#g]
    local value = redis.call('HGET', H, 'c' .. head)
    local r = record_head(value)
    if r.parent ~= '' then
      redis.call('HSET', H, 'c' .. head, '0:' .. string.sub(value, r.parent_end + 1))
    end
  end
end
return 'ok'
""",
)

#: Delete every key of the thread; replies how many existed.
DELETE_THREAD: Final = _script("delete_thread", "return redis.call('DEL', unpack(KEYS))")

#: Read a whole thread for copy_thread: one {type, flat pairs} item per key.
COPY_OUT: Final = _script(
    "copy_out",
    r"""
local out = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key).ok
  if kind == 'hash' then
    out[i] = {'hash', redis.call('HGETALL', key)}
  elseif kind == 'zset' then
    out[i] = {'zset', redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')}
  else
    out[i] = {'none', {}}
  end
end
return out
""",
)

#: Replace a thread with a copy: ARGV ttl_ms, then per key its type, the
#: number of values, and the values (hash: field, value; zset: member, score).
COPY_IN: Final = _script(
    "copy_in",
    r"""
local ttl = tonumber(ARGV[1])
redis.call('DEL', unpack(KEYS))
local i = 2
for _, key in ipairs(KEYS) do
  local kind, n = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  for s = 0, n - 1, BATCH * 2 do
    local args = {}
    for j = s, math.min(s + BATCH * 2, n) - 1, 2 do
      if kind == 'zset' then
        args[#args + 1] = ARGV[i + j + 1]
        args[#args + 1] = ARGV[i + j]
      else
        args[#args + 1] = ARGV[i + j]
        args[#args + 1] = ARGV[i + j + 1]
      end
    end
    if #args > 0 then
      redis.call(kind == 'zset' and 'ZADD' or 'HSET', key, unpack(args))
    end
  end
  i = i + n
end
expire(ttl)
return 'ok'
""",
)
