"""The blob store: where channel values live, shared by the checkpoints that hold them.

A channel value (a serialized ``(type, bytes)`` pair from the saver's serde)
is stored once per thread, namespace, channel and version, under a *blob
field* name built by :mod:`recostate.contrib.langgraph._layout`. Every
checkpoint that holds the value refers to it; the store counts those
references and drops the value when the last one goes (a pruned, deleted or
overwritten checkpoint), so a channel that did not change between checkpoints
costs nothing more and nothing is left behind.

A value is stored as a state's version is (``docs/architecture.md``): one
recostate frame, compressed and checksummed (signed under the store's
``signing_key``), and from the store's ``chunk_threshold`` on a manifest of
content-defined chunks kept in the thread's chunk store, the same one states
use (``recostate._storage.scripts.pieces_source``). So the versions of a
channel that grows a little at every step (a message list) share all their
chunks but the last few: a thread's whole history costs little more than its
latest state, and a ``put`` sends only the chunks the thread does not hold
yet. The client remembers, per thread, which pieces the server holds (from
its own puts and reads); the put script checks every reference, so a memory
that is wrong costs a second round trip, never a wrong value.

This module is the whole interface, on both sides of the wire:

* Python: :class:`BlobCodec` turns values into the script arguments that
  carry them, and a read's reply back into values.
* Lua (:data:`LUA`, assembled into the layout's scripts after the chunk
  store's helpers, with ``B`` the thread's blob hash and ``C``, ``R`` its
  pieces and their reference counts): ``blob_put_all``, ``blob_missing``,
  ``blob_ref``, ``blob_unref`` and ``blob_read``.
* :data:`KEY_KINDS`: the keys of a thread that belong to the store.

In hash ``B``: the value of blob ``f`` is field ``'v'..f`` (the serializer's
type name, one length byte first, then the frame) and its reference count
``'n'..f``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from recostate._codec import Codec, KnownPieces, StoredVersion, VersionHeader
from recostate._storage import PieceMemory

__all__ = ["KEY_KINDS", "LUA", "BlobCodec", "Encoded", "ReadPieces"]

#: The thread keys the blob store owns, by layout kind letter, each a hash:
#: the values, the chunk store's pieces, their reference counts.
KEY_KINDS: Final = ("b", "c", "r")

#: The variable names the scripts bind those keys to, in the same order.
KEY_NAMES: Final = ("B", "C", "R")

LUA: Final = r"""
-- The blob store (recostate.contrib.langgraph._blobs).
local function blob_frame(value)
  return string.sub(value, 2 + string.byte(value, 1))
end

-- Whether piece id is stored, or sent (in sent) with every piece under it.
local function blob_piece_ready(id, sent)
  if redis.call('HEXISTS', C, id) == 1 then return true end
  local piece = sent[id]
  if not piece then return false end
  if kind_of(piece) == KIND_NODE then
    for _, child in ipairs(refs_of(piece)) do
      if not blob_piece_ready(child, sent) then return false end
    end
  end
  return true
end

-- One reference more to piece id, storing it (and what it names) first when
-- it is new: only pieces a stored value reaches are ever written.
local function blob_piece_put(id, sent)
  if redis.call('HEXISTS', C, id) == 0 then
    local piece = sent[id]
    redis.call('HSET', C, id, piece)
    if kind_of(piece) == KIND_NODE then
      for _, child in ipairs(refs_of(piece)) do blob_piece_put(child, sent) end
    end
  end
  incref(id)
end

-- Store the values sent (fields[j] -> values[j]) that are not stored yet,
-- with their pieces (ARGV[first..], id and frame pairs) and the thread's
-- dictionary (dict_id; dict_frame when it is sent). Every check comes before
-- the first write. Returns nil once stored, else the reply to give:
-- {'pieces'} (a piece is neither stored nor sent) | {'dict', the stored dictionary}.
local function blob_put_all(fields, values, dict_id, dict_frame, first)
  local sent = {}
  for i = first, #ARGV, 2 do sent[ARGV[i]] = ARGV[i + 1] end
  local have = nil
  if dict_id ~= '' then
    have = redis.call('HGET', C, 'i')
    if have and have ~= dict_id then return {'dict', redis.call('HGET', C, 'd')} end
    if not have and dict_frame == '' then return {'pieces'} end
  end
  local new = {}
  for j, f in ipairs(fields) do
    if redis.call('HEXISTS', B, 'v' .. f) == 0 then
      local frame = blob_frame(values[j])
      if kind_of(frame) == KIND_MANIFEST then
        for _, id in ipairs(refs_of(frame)) do
          if not blob_piece_ready(id, sent) then return {'pieces'} end
        end
      end
      new[#new + 1] = j
    end
  end
  if dict_id ~= '' and not have then redis.call('HSET', C, 'd', dict_frame, 'i', dict_id) end
  for _, j in ipairs(new) do
    local frame = blob_frame(values[j])
    if kind_of(frame) == KIND_MANIFEST then
      for _, id in ipairs(refs_of(frame)) do blob_piece_put(id, sent) end
    end
    redis.call('HSET', B, 'v' .. fields[j], values[j])
  end
  return nil
end

local function blob_missing(fields)
  local missing = {}
  for _, f in ipairs(fields) do
    if redis.call('HEXISTS', B, 'v' .. f) == 0 then missing[#missing + 1] = f end
  end
  return missing
end

local function blob_ref(f)
  redis.call('HINCRBY', B, 'n' .. f, 1)
end

-- One reference fewer; the last one takes the value and its pieces' references.
local function blob_unref(f)
  if redis.call('HINCRBY', B, 'n' .. f, -1) <= 0 then
    local value = redis.call('HGET', B, 'v' .. f)
    redis.call('HDEL', B, 'n' .. f, 'v' .. f)
    if value then
      release(blob_frame(value))
      collect_dictionary()
    end
  end
end

-- Append to out, as (id, frame or false) pairs, the pieces a manifest frame
-- names, through its nodes, but those already in seen (which it extends):
-- a reply carries each piece once, however many values share it.
local function blob_pieces(frame, seen, out)
  local wanted = refs_of(frame)
  while #wanted > 0 do
    local ids = {}
    for _, id in ipairs(wanted) do
      if not seen[id] then
        seen[id] = true
        ids[#ids + 1] = id
      end
    end
    wanted = {}
    for i, piece in ipairs(hmget(ids)) do
      out[#out + 1] = ids[i]
      out[#out + 1] = piece
      if piece and is_node(ids[i]) then
        for _, child in ipairs(refs_of(piece)) do wanted[#wanted + 1] = child end
      end
    end
  end
end

-- The values of blobs (false where absent); the pieces their manifests name
-- go to out (see blob_pieces).
local function blob_read(fields, seen, out)
  if #fields == 0 then return {} end
  local names = {}
  for i, f in ipairs(fields) do names[i] = 'v' .. f end
  local values = redis.call('HMGET', B, unpack(names))
  for _, value in ipairs(values) do
    if value then
      local frame = blob_frame(value)
      if kind_of(frame) == KIND_MANIFEST then blob_pieces(frame, seen, out) end
    end
  end
  return values
end
"""


def _value_id(field: bytes) -> str:
    """Return the id a value's frame is bound to (what a signature covers): its blob field."""
    return field.decode("utf-8", "surrogatepass")


class Encoded:
    """Channel values ready to send, and what the thread's piece memory learns once stored."""

    __slots__ = ("args", "known", "sent_bytes")

    def __init__(self, args: list[bytes], known: KnownPieces, sent_bytes: int) -> None:
        #: ``n, fields..., values..., dictionary id, dictionary frame, (id, piece)...``
        self.args = args
        self.known = known
        self.sent_bytes = sent_bytes


class ReadPieces:
    """The pieces and the dictionary one read's reply carries, for the values it read."""

    __slots__ = ("dictionary", "pieces")

    def __init__(self, items: Sequence[Any], dictionary: Any) -> None:
        self.pieces = {
            bytes(items[i]): bytes(items[i + 1])
            for i in range(0, len(items), 2)
            if items[i + 1] is not None
        }
        self.dictionary = bytes(dictionary) if dictionary else None


class BlobCodec:
    """Channel values to stored frames and back, with a memory of the pieces each thread holds."""

    __slots__ = ("_codec", "_memory")

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self._memory = PieceMemory()

    async def encode(
        self, thread_id: str, values: Sequence[tuple[bytes, str, bytes]]
    ) -> Encoded:
        """Return ``(field, type, data)`` values as the arguments a put sends.

        Pieces the thread is remembered to hold are not sent; the first value
        large enough to need one chooses the thread's compression dictionary.
        """
        held = self._memory.get(thread_id)
        known = KnownPieces(
            dict(held.sizes) if held else {},
            held.dictionary_id if held else b"",
            held.dictionary if held else b"",
        )
        fields: list[bytes] = []
        frames: list[bytes] = []
        pieces: list[bytes] = []
        dictionary_frame = b""
        sent = 0
        for field, type_, data in values:
            tag = type_.encode("utf-8")
            if len(tag) > 255:
                raise ValueError(f"serializer type name too long: {type_[:40]!r}...")
            header = VersionHeader(0, len(data), 0, 0)
            version = await self._codec.encode(data, header, _value_id(field), known)
            if version.dictionary_frame:
                dictionary_frame = version.dictionary_frame
                known.dictionary_id, known.dictionary = version.dictionary_id, version.dictionary
            for ident, piece in version.pieces:
                if ident not in known.sizes:
                    pieces += (ident, piece)
            known.sizes.update(version.refs)
            fields.append(field)
            frames.append(bytes((len(tag),)) + tag + version.frame)
            sent += version.sent_bytes
        args = [
            str(len(fields)).encode("ascii"),
            *fields,
            *frames,
            known.dictionary_id,
            dictionary_frame,
            *pieces,
        ]
        return Encoded(args, known, sent)

    def stored(self, thread_id: str, encoded: Encoded) -> None:
        """Record that a put of ``encoded`` succeeded."""
        self._memory.remember(thread_id, encoded.known)

    def forget(self, thread_id: str) -> None:
        """Drop what is remembered of a thread (deleted, or the memory proved wrong)."""
        self._memory.forget(thread_id)

    def use_dictionary(self, thread_id: str, frame: bytes) -> None:
        """Adopt the dictionary the thread holds (a put answered that it holds another)."""
        contents = self._codec.dictionary_contents(frame, thread_id, None)
        self._memory.remember(
            thread_id, KnownPieces({}, self._codec.dictionary_id(contents), contents)
        )

    async def decode(
        self, thread_id: str, field: bytes, item: Any, read: ReadPieces
    ) -> tuple[str, bytes] | None:
        """Return the ``(type, bytes)`` of one value a read returned; ``None`` if it is absent.

        Raises:
            IntegrityError: the value, one of its pieces or the dictionary fails its checks.
        """
        if item is None:
            return None
        raw = bytes(item)
        size = raw[0]
        stored = StoredVersion(raw[1 + size :], pieces=read.pieces, dictionary=read.dictionary)
        data = await self._codec.unpack(stored, _value_id(field), 0)
        return raw[1 : 1 + size].decode("utf-8"), data

    def learn(self, thread_id: str, read: ReadPieces) -> None:
        """Remember the pieces a read showed the thread holds (so puts need not send them)."""
        if not read.pieces:
            return
        held = self._memory.get(thread_id)
        sizes = dict(held.sizes) if held else {}
        sizes.update((ident, len(piece)) for ident, piece in read.pieces.items())
        if held and held.dictionary_id:
            dictionary_id, dictionary = held.dictionary_id, held.dictionary
        elif read.dictionary is not None:
            dictionary = self._codec.dictionary_contents(read.dictionary, thread_id, None)
            dictionary_id = self._codec.dictionary_id(dictionary)
        else:
            dictionary_id, dictionary = b"", b""
        self._memory.remember(thread_id, KnownPieces(sizes, dictionary_id, dictionary))
