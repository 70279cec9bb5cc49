"""The blob store: where channel values live, shared by the checkpoints that hold them.

A channel value (a serialized ``(type, bytes)`` pair from the saver's serde)
is stored once per thread, namespace, channel and version, under a *blob
field* name built by :mod:`recostate.contrib.langgraph._layout`. Every
checkpoint that holds the value refers to it; the store counts those
references and drops the value when the last one goes (a pruned, deleted or
overwritten checkpoint), so a channel that did not change between checkpoints
costs nothing more and nothing is left behind.

This module is the whole interface, on both sides of the wire:

* Python: :func:`encode` turns a value into the script arguments that carry
  it, :func:`decode` turns one item of a :data:`LUA` ``blob_read`` reply back
  into the value.
* Lua (:data:`LUA`, pasted into the layout's scripts, with ``B`` the thread's
  blob hash): ``blob_put(field, ARGV, i)`` stores a value from the arguments
  at ``i`` and returns the index after them; ``blob_missing(fields)``,
  ``blob_ref(field)``, ``blob_unref(field)`` and ``blob_read(fields)``.
* :data:`KEY_KINDS`: the keys of a thread that belong to the store.

Today a value is stored whole: one hash field ``v<field>`` with the value and
one ``n<field>`` with its reference count, in the thread's blob hash (so in
the thread's hash slot). Storing values as content-defined chunks shared
between versions changes this module only.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["KEY_KINDS", "LUA", "decode", "encode"]

#: The thread keys the blob store owns, by layout kind letter, each a hash.
KEY_KINDS: Final = ("b",)

LUA: Final = r"""
-- The blob store (recostate.contrib.langgraph._blobs): in hash B, the value
-- of blob f is field 'v'..f and its reference count field 'n'..f.
local function blob_put(f, args, i)
  redis.call('HSET', B, 'v' .. f, args[i])
  return i + 1
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

local function blob_unref(f)
  if redis.call('HINCRBY', B, 'n' .. f, -1) <= 0 then
    redis.call('HDEL', B, 'n' .. f, 'v' .. f)
  end
end

local function blob_read(fields)
  if #fields == 0 then return {} end
  local names = {}
  for i, f in ipairs(fields) do names[i] = 'v' .. f end
  return redis.call('HMGET', B, unpack(names))
end
"""


def encode(type_: str, data: bytes) -> list[bytes]:
    """Return the script arguments that carry one value (read back by ``blob_put``)."""
    tag = type_.encode("utf-8")
    if len(tag) > 255:
        raise ValueError(f"serializer type name too long: {type_[:40]!r}...")
    return [bytes((len(tag),)) + tag + data]


def decode(item: Any) -> tuple[str, bytes] | None:
    """Return the ``(type, bytes)`` of one ``blob_read`` reply item; ``None`` if it is absent."""
    if item is None:
        return None
    raw = bytes(item)
    size = raw[0]
    return raw[1 : 1 + size].decode("utf-8"), raw[1 + size :]
