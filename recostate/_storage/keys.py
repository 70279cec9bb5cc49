"""The names of every key recostate reads or writes.

Layout (format 2), with ``P`` the store's ``key_prefix`` and ``H`` the first 16
hex digits of SHA-1 over the UTF-8 bytes of the state id::

    P:{H}:s:<id>   hash    the state: format, head version, last version given,
                           created_at, and the head's metadata in readable fields
    P:{H}:l:<id>   list    the stored version numbers, oldest first
    P:{H}:v:<id>   hash    ``h``: the head's record (its number and the state's
                           creation time, big-endian doubles, then its frame);
                           older version number -> its frame (a whole state,
                           or a manifest)
    P:{H}:c:<id>   hash    piece id -> chunk or manifest node frame; ``d``: the
                           state's compression dictionary, ``i``: its id
    P:{H}:r:<id>   hash    piece id -> how many versions and nodes refer to it
    P:{H}:d:<id>   string  the ids of the state's most recent writes, with their versions
    P:t:<tag>      set     ids of states whose head carries <tag>

Why this shape:

* ``{H}`` is a Redis Cluster hash tag, so all keys of one state share one slot:
  a save is one script call on one node, and no reference count ever crosses
  a slot. It is a digest rather than the id because an id may contain braces.
* A state has at most six keys whatever its history, so a TTL is six
  ``PEXPIRE`` calls, not one per version or chunk.
* The id is kept whole at the end of each key, after a kind marker that never
  contains a colon, so two different ids can never share a key even if their
  digests collide.
* Every key starts with ``P``, so an ACL user limited to ``~P*`` can run every
  operation, and ``SCAN MATCH P:{????????????????}:s:*`` finds exactly the
  state hashes.

recostate 0.1 (format 1) kept ``P:{H}:i:<id>`` (a sorted set of versions),
``P:{H}:w:<id>`` (write ids) and one string ``P:{H}:v<n>:<id>`` per version;
:class:`LegacyKeys` names them for the upgrade (``recostate._storage.upgrade``).
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = [
    "HASH_TAG_LENGTH",
    "STATE_KINDS",
    "KeySpace",
    "LegacyKeys",
    "StateKeys",
    "encode_id",
    "glob_escape",
]

HASH_TAG_LENGTH: Final = 16
#: The kind markers of a state's keys, in the order scripts receive them.
STATE_KINDS: Final = (b"s", b"l", b"v", b"c", b"r", b"d")


def encode_id(state_id: str) -> bytes:
    """Return the bytes of ``state_id`` used in keys.

    ``surrogatepass`` keeps every Python ``str`` encodable, lone surrogates
    included, and the mapping stays one-to-one.
    """
    return state_id.encode("utf-8", "surrogatepass")


def hash_tag(raw_id: bytes) -> bytes:
    """Return the Redis Cluster hash tag body of an id (``H`` above)."""
    return hashlib.sha1(raw_id, usedforsecurity=False).hexdigest()[:HASH_TAG_LENGTH].encode()


def glob_escape(raw: bytes) -> bytes:
    """Escape the glob characters of ``raw`` for a Redis ``MATCH`` pattern."""
    out = bytearray()
    for byte in raw:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


class StateKeys:
    """The keys of one state, in the order every per-state script takes them."""

    __slots__ = ("all", "member", "state", "state_id")

    def __init__(self, prefix: bytes, state_id: str) -> None:
        raw = encode_id(state_id)
        base = prefix + b":{" + hash_tag(raw) + b"}:"
        self.state_id = state_id
        #: The id as stored in tag sets.
        self.member = raw
        #: Every key of the state: state hash, version list, versions, pieces,
        #: reference counts, write ids.
        self.all = [base + kind + b":" + raw for kind in STATE_KINDS]
        self.state = self.all[0]


class LegacyKeys:
    """The keys recostate 0.1 used for one state, beside the state hash."""

    __slots__ = ("index", "version_base", "version_suffix", "writes")

    def __init__(self, prefix: bytes, state_id: str) -> None:
        raw = encode_id(state_id)
        base = prefix + b":{" + hash_tag(raw) + b"}:"
        self.index = base + b"i:" + raw
        self.writes = base + b"w:" + raw
        self.version_base = base + b"v"
        self.version_suffix = b":" + raw

    def version(self, number: int) -> bytes:
        """Return the key of version ``number``."""
        return self.version_base + str(number).encode("ascii") + self.version_suffix


class KeySpace:
    """The key names under one ``key_prefix``."""

    __slots__ = ("_recent", "_state_marker", "prefix", "tag_base")

    #: How many ids' keys are kept at hand (a digest and six names each).
    RECENT_IDS = 1024

    def __init__(self, key_prefix: str) -> None:
        self.prefix = key_prefix.encode("utf-8")
        self.tag_base = self.prefix + b":t:"
        # Length of "P:{H}:s:" in a state hash key: the id follows it.
        self._state_marker = len(self.prefix) + 2 + HASH_TAG_LENGTH + 4
        self._recent: dict[str, StateKeys] = {}

    def state(self, state_id: str) -> StateKeys:
        """Return the keys of ``state_id``."""
        # Services and agent loops touch the same ids again and again; the
        # SHA-1 and the key names are built once while an id is recent.
        keys = self._recent.get(state_id)
        if keys is None:
            if len(self._recent) >= self.RECENT_IDS:
                self._recent.clear()
            keys = self._recent[state_id] = StateKeys(self.prefix, state_id)
        return keys

    def legacy(self, state_id: str) -> LegacyKeys:
        """Return the 0.1 keys of ``state_id``."""
        return LegacyKeys(self.prefix, state_id)

    def tag(self, tag: str) -> bytes:
        """Return the key of the set of states carrying ``tag``."""
        return self.tag_base + tag.encode("utf-8", "surrogatepass")

    def state_pattern(self) -> bytes:
        """Return the SCAN ``MATCH`` pattern that matches every state hash and nothing else."""
        return glob_escape(self.prefix) + b":{" + b"?" * HASH_TAG_LENGTH + b"}:s:*"

    def state_key_parts(self) -> tuple[bytes, bytes]:
        """Return what comes before and after the digest in a state hash key.

        The tag listing script rebuilds state keys from ids with these and
        ``redis.sha1hex``, the same digest as :class:`StateKeys`.
        """
        return self.prefix + b":{", b"}:s:"

    def id_from_state_key(self, key: bytes) -> str:
        """Return the state id a state hash key names."""
        return key[self._state_marker :].decode("utf-8", "surrogatepass")
