"""The names of every key recostate reads or writes.

Layout, with ``P`` the store's ``key_prefix`` and ``H`` the first 16 hex digits
of SHA-1 over the UTF-8 bytes of the state id::

    P:{H}:s:<id>        hash    the state: head, last version given, created_at,
                                the head's metadata in readable fields
    P:{H}:i:<id>        zset    the stored versions (member and score: the number)
    P:{H}:w:<id>        zset    recent write ids -> the version each one wrote
    P:{H}:v<n>:<id>     string  version n: a codec frame (header and payload)
    P:t:<tag>           set     ids of states whose head carried <tag> when saved

Why this shape:

* ``{H}`` is a Redis Cluster hash tag, so all keys of one state share one slot
  and a save is one script call on one node. It is a digest rather than the id
  itself because an id may contain braces, which would change the tag.
* The id is kept whole at the end of each key, after a kind marker that never
  contains a colon, so two different ids can never share a key even if their
  digests collide: the kind and the id are read back unambiguously.
* Every key starts with ``P``, so an ACL user limited to ``~P*`` can run every
  operation, and a SCAN with ``MATCH P:{????????????????}:s:*`` finds exactly
  the state hashes.

The server-side scripts build version and tag keys from the bases given here
(``version_base`` + number + ``version_suffix``; ``tag_base`` + tag); both
sides must agree, so this module is the only one that spells them.
"""

from __future__ import annotations

import hashlib

__all__ = ["HASH_TAG_LENGTH", "KeySpace", "StateKeys", "encode_id", "glob_escape"]

HASH_TAG_LENGTH = 16


def encode_id(state_id: str) -> bytes:
    """Return the bytes of ``state_id`` used in keys.

    ``surrogatepass`` keeps every Python ``str`` encodable, lone surrogates
    included, and the mapping stays one-to-one.
    """
    return state_id.encode("utf-8", "surrogatepass")


def glob_escape(raw: bytes) -> bytes:
    """Escape the glob characters of ``raw`` for a Redis ``MATCH`` pattern."""
    out = bytearray()
    for byte in raw:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


class StateKeys:
    """The keys of one state."""

    __slots__ = ("index", "state", "state_id", "version_base", "version_suffix", "writes")

    def __init__(self, prefix: bytes, state_id: str) -> None:
        raw = encode_id(state_id)
        digest = hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:HASH_TAG_LENGTH]
        base = prefix + b":{" + digest.encode("ascii") + b"}:"
        self.state_id = state_id
        self.state = base + b"s:" + raw
        self.index = base + b"i:" + raw
        self.writes = base + b"w:" + raw
        self.version_base = base + b"v"
        self.version_suffix = b":" + raw

    def version(self, number: int) -> bytes:
        """Return the key of version ``number``."""
        return self.version_base + str(number).encode("ascii") + self.version_suffix

    @property
    def fixed(self) -> list[bytes]:
        """The keys every state has (state hash, version index, write ids), in script order."""
        return [self.state, self.index, self.writes]


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

    def all_keys_pattern(self) -> bytes:
        """Return the SCAN ``MATCH`` pattern of every key under the prefix."""
        return glob_escape(self.prefix) + b":*"
