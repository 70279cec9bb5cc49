"""The tag index on a Redis Cluster, kept exact without a transaction.

On one server, the save script updates a tag's set in the same atomic step as
the state. On a cluster, the set ``P:t:<tag>`` lives in another hash slot than
the state's keys, so no script and no MULTI can cover both. The index is kept
exact by three rules instead:

1. **The index is never behind an acknowledged state.** A save adds the id to
   each of its tags' sets *before* its script runs, and again *after* it, so
   whatever a cleaner removed in between is put back before the save returns.
2. **A reader trusts nothing but the head.** Every member a listing finds is
   checked against the ``tags`` field of its state's head hash (one pipelined
   ``HGET`` per node per page); a member whose state is gone (deleted,
   expired, trimmed) or whose head no longer carries the tag is not returned.
3. **Stale members are removed safely.** A member is removed (``SREM``) only
   after its head was seen without the tag, and the head is checked again
   after the removal: if a save added the tag in between, the member is put
   back. Together with rule 1 this never leaves an acknowledged tagged state
   out of its set once the cleaner and the save have both returned.

``delete``, ``delete_version`` and ``prune`` clean the memberships of the
tags the head carried, at once; a re-tag or an expiry leaves members that the
next listing of that tag checks and removes (rule 2 keeps them out of every
answer meanwhile).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence

from recostate._keys import KeySpace, StateKeys
from recostate._redis import Executor

__all__ = ["ClusterTagIndex"]

# Members per SSCAN page, each page verified in one pipelined round trip per node.
_PAGE = 500


def _carries(raw: object, tag: str) -> bool:
    if not isinstance(raw, (bytes, str)):
        return False
    try:
        tags = json.loads(raw)
    except ValueError:
        return False
    return isinstance(tags, list) and tag in tags


def _tags_of(raw: object) -> list[str]:
    if not isinstance(raw, (bytes, str)):
        return []
    try:
        tags = json.loads(raw)
    except ValueError:
        return []
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


class ClusterTagIndex:
    """The tag sets of one store on a Redis Cluster."""

    def __init__(self, executor: Executor, keys: KeySpace) -> None:
        self._executor = executor
        self._keys = keys

    @staticmethod
    def _member(keys: StateKeys) -> bytes:
        return keys.version_suffix[1:]

    async def add(self, keys: StateKeys, tags: Iterable[str]) -> None:
        """Add the state to each tag's set (before and again after its save, rule 1)."""
        for tag in tags:
            await self._executor.command("SADD", self._keys.tag(tag), self._member(keys))

    async def head_tags(self, keys: StateKeys) -> list[str]:
        """Return the tags the state's head carries now (``[]`` if it does not exist)."""
        return _tags_of(await self._executor.command("HGET", keys.state, "tags"))

    async def forget(self, keys: StateKeys, tags: Iterable[str]) -> None:
        """Remove the state from the sets of those ``tags`` its head no longer carries."""
        for tag in tags:
            await self._drop_if_stale(keys, tag)

    async def _drop_if_stale(self, keys: StateKeys, tag: str) -> None:
        if tag in await self.head_tags(keys):
            return
        member = self._member(keys)
        await self._executor.command("SREM", self._keys.tag(tag), member)
        # Rule 3: a save may have tagged the head between the check and the SREM.
        if tag in await self.head_tags(keys):
            await self._executor.command("SADD", self._keys.tag(tag), member)

    async def members(self, tag: str) -> AsyncIterator[str]:
        """Yield the ids whose head carries ``tag``, each once; drop stale members."""
        seen: set[bytes] = set()
        tag_key = self._keys.tag(tag)
        cursor: bytes | int = 0
        while True:
            cursor, page = await self._executor.command("SSCAN", tag_key, cursor, "COUNT", _PAGE)
            fresh: Sequence[bytes] = [m for m in page if m not in seen]
            seen.update(fresh)
            ids = [m.decode("utf-8", "surrogatepass") for m in fresh]
            states = [self._keys.state(state_id) for state_id in ids]
            heads = await self._executor.hget_many([k.state for k in states], "tags")
            for state_id, state_keys, raw in zip(ids, states, heads, strict=True):
                if _carries(raw, tag):
                    yield state_id
                else:
                    await self._drop_if_stale(state_keys, tag)
            if int(cursor) == 0:
                return
