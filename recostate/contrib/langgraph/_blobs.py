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
``signing_key``), and from :data:`VALUE_CHUNK_FROM` bytes on a manifest of
content-defined chunks kept in the thread's chunk store, the same one states
use (``recostate._storage.scripts.pieces_source``). Pending writes are stored
the same way (their frames live in the thread's record hash, see
``_layout``). So the versions of a channel that grows a little at every step
(a message list) share all their chunks but the last few, and the message a
task wrote is the chunk the list holds at the next checkpoint: a thread's
whole history costs little more than its latest state, and a ``put`` sends
only the chunks the thread does not hold yet. The client remembers, per
thread, which pieces the server holds (from its own writes and reads); the
scripts check every reference, so a memory that is wrong costs a second
round trip, never a wrong value.

This module is the whole interface, on both sides of the wire:

* Python: :class:`BlobCodec` turns values into the frames and pieces a script
  stores, and a read's reply back into values.
* Lua (:data:`LUA`, assembled into the layout's scripts after the chunk
  store's helpers, with ``B`` the thread's blob hash and ``C``, ``R`` its
  pieces and their reference counts): ``blob_pieces_put`` (the pieces of any
  frames), ``blob_put_all``, ``blob_missing``, ``blob_ref``, ``blob_unref``,
  ``blob_pieces`` and ``blob_read``.
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

__all__ = [
    "KEY_KINDS",
    "KEY_NAMES",
    "LUA",
    "VALUE_CHUNK_FROM",
    "BlobCodec",
    "Encoded",
    "ReadPieces",
    "tagged",
    "untagged",
]

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

-- Check, then store and count, every piece the chunked frames among frames
-- name, from the pieces sent (ARGV[first..], id and frame pairs) and the
-- thread's dictionary (dict_id; dict_frame when it is sent). Every check
-- comes before the first write. Returns nil once stored, else the reply to
-- give: {'pieces'} (a piece is neither stored nor sent) | {'dict', the stored dictionary}.
local function blob_pieces_put(frames, dict_id, dict_frame, first)
  local sent = {}
  for i = first, #ARGV, 2 do sent[ARGV[i]] = ARGV[i + 1] end
  local have, refused = check_dictionary(dict_id, dict_frame)
  if refused then
    if refused[1] == 'missing' then return {'pieces'} end
    return refused
  end
  for _, frame in ipairs(frames) do
    if kind_of(frame) == KIND_MANIFEST then
      for _, id in ipairs(refs_of(frame)) do
        if not blob_piece_ready(id, sent) then return {'pieces'} end
      end
    end
  end
  if dict_id ~= '' and not have then redis.call('HSET', C, 'd', dict_frame, 'i', dict_id) end
  for _, frame in ipairs(frames) do
    if kind_of(frame) == KIND_MANIFEST then
      for _, id in ipairs(refs_of(frame)) do blob_piece_put(id, sent) end
    end
  end
  return nil
end

-- Store the values sent (fields[j] -> values[j]) that are not stored yet,
-- with their pieces (see blob_pieces_put, which gives the reply on refusal).
local function blob_put_all(fields, values, dict_id, dict_frame, first)
  local new, frames = {}, {}
  for j, f in ipairs(fields) do
    if redis.call('HEXISTS', B, 'v' .. f) == 0 then
      new[#new + 1] = j
      frames[#frames + 1] = blob_frame(values[j])
    end
  end
  local refused = blob_pieces_put(frames, dict_id, dict_frame, first)
  if refused then return refused end
  for _, j in ipairs(new) do redis.call('HSET', B, 'v' .. fields[j], values[j]) end
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


#: Values from this many bytes on are stored in chunks (when the store chunks
#: at all, and when its ``chunk_threshold`` is not lower): a message written
#: by a task (a pending write) is then the very chunk the message list holds
#: once the next checkpoint is saved, stored once for both.
VALUE_CHUNK_FROM: Final = 1024


def _value_id(field: bytes) -> str:
    """Return the id a value's frame is bound to (what a signature covers): its field."""
    return field.decode("utf-8", "surrogatepass")


def tagged(type_: str, frame: bytes) -> bytes:
    """Return a channel value as the blob hash holds it: its type name, then its frame."""
    tag = type_.encode("utf-8")
    if len(tag) > 255:
        raise ValueError(f"serializer type name too long: {type_[:40]!r}...")
    return bytes((len(tag),)) + tag + frame


def untagged(value: bytes) -> tuple[str, bytes]:
    """Return the type name and frame of a value as the blob hash holds it."""
    size = value[0]
    return value[1 : 1 + size].decode("utf-8"), value[1 + size :]


class Encoded:
    """Values ready to send, and what the thread's piece memory learns once they are stored."""

    __slots__ = ("frames", "known", "sent_bytes", "tail")

    def __init__(
        self, frames: list[bytes], tail: list[bytes], known: KnownPieces, sent_bytes: int
    ) -> None:
        #: One frame per value, in order.
        self.frames = frames
        #: The arguments after the values: dictionary id, dictionary frame, (id, piece)...
        self.tail = tail
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
    """Values to stored frames and back, with a memory of the pieces each thread holds."""

    __slots__ = ("_chunk_from", "_codec", "_memory")

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self._memory = PieceMemory()
        threshold = codec.chunk_threshold
        self._chunk_from = None if threshold is None else min(threshold, VALUE_CHUNK_FROM)

    async def encode(self, thread_id: str, values: Sequence[tuple[bytes, bytes]]) -> Encoded:
        """Return ``(field, data)`` values as the frames and pieces a script stores.

        Pieces the thread is remembered to hold are not sent; the first value
        large enough to need one chooses the thread's compression dictionary.
        """
        held = self._memory.get(thread_id)
        known = KnownPieces(
            dict(held.sizes) if held else {},
            held.dictionary_id if held else b"",
            held.dictionary if held else b"",
            cut=held.cut if held else None,
        )
        kept = known.cut
        frames: list[bytes] = []
        pieces: list[bytes] = []
        dictionary_frame = b""
        sent = 0
        for field, data in values:
            chunked = self._chunk_from is not None and len(data) >= self._chunk_from
            header = VersionHeader(0, len(data), 0, 0)
            # Every value is offered the thread's last cut: one that extends
            # it (the next version of a growing list) reuses its chunk ids.
            known.cut = kept
            version = await self._codec.encode(
                data, header, _value_id(field), known, chunked=chunked
            )
            if version.cut is not None and (
                kept is None or 2 * len(version.cut.raw) >= len(kept.raw)
            ):
                # A value at least half the size of the kept cut's replaces
                # it (the list grown, or a new large value), so a small
                # pending write does not displace the list it will join.
                kept = version.cut
            if version.dictionary_frame:
                dictionary_frame = version.dictionary_frame
                known.dictionary_id, known.dictionary = version.dictionary_id, version.dictionary
            # The codec sends only what known lacks, and known grows with
            # each value, so no piece goes twice.
            for ident, piece in version.pieces:
                pieces += (ident, piece)
            known.sizes.update(version.refs)
            frames.append(version.frame)
            sent += version.sent_bytes
        known.cut = kept
        return Encoded(frames, [known.dictionary_id, dictionary_frame, *pieces], known, sent)

    def stored(self, thread_id: str, encoded: Encoded) -> None:
        """Record that a script stored ``encoded``."""
        self._memory.remember(thread_id, encoded.known)

    def forget(self, thread_id: str) -> None:
        """Drop what is remembered of a thread (deleted, or the memory proved wrong)."""
        self._memory.forget(thread_id)

    def refused(self, thread_id: str, reply: Any) -> bool:
        """Learn from a script's refusal to store pieces; tell whether it was one.

        ``{'dict', frame}``: the thread holds another dictionary, adopted
        here; ``{'pieces'}``: pieces this client took for stored are not, so
        it forgets what it knew of the thread and sends every one next time.
        """
        if not isinstance(reply, list) or not reply:
            return False
        if reply[0] == b"dict":
            dictionary_id, contents = self._dictionary(bytes(reply[1]), thread_id)
            self._memory.remember(thread_id, KnownPieces({}, dictionary_id, contents))
            return True
        if reply[0] == b"pieces":
            self._memory.forget(thread_id)
            return True
        return False

    def _dictionary(self, frame: bytes, thread_id: str) -> tuple[bytes, bytes]:
        """Return the id and contents of a thread's dictionary frame, checked."""
        contents = self._codec.dictionary_contents(frame, thread_id, None)
        return self._codec.dictionary_id(contents), contents

    async def decode(self, field: bytes, frame: bytes, read: ReadPieces) -> bytes:
        """Return the bytes a value's frame holds, from the pieces a read returned.

        Raises:
            IntegrityError: the value, one of its pieces or the dictionary fails its checks.
        """
        stored = StoredVersion(frame, pieces=read.pieces, dictionary=read.dictionary)
        return await self._codec.unpack(stored, _value_id(field), 0)

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
            dictionary_id, dictionary = self._dictionary(read.dictionary, thread_id)
        else:
            dictionary_id, dictionary = b"", b""
        cut = held.cut if held else None
        self._memory.remember(thread_id, KnownPieces(sizes, dictionary_id, dictionary, cut=cut))
