"""The tag index: which states' heads carry a tag, kept exact on one server and on a cluster.

One interface, two implementations:

* :class:`ScriptTagIndex` (one server): the write scripts move a state's
  memberships from the old head's tags to the new head's in the same atomic
  step as the write; a listing script checks each member against its head
  and drops stale ones (an expired state keeps its memberships until then).
* :class:`ClusterTagIndex` (Redis Cluster): a tag's set ``P:t:<tag>`` lives in
  another hash slot than the state's keys, so no script and no MULTI can
  cover both. It is kept exact by three rules instead:

  1. **The index is never behind an acknowledged state.** A save adds the id
     to each of its tags' sets *before* its script runs, and again *after* it,
     so whatever a cleaner removed in between is put back before it returns.
  2. **A reader trusts nothing but the head.** Every member a listing finds is
     checked against the ``tags`` field of its head (one pipelined ``HGET``
     per node per page); a member whose state is gone or whose head no longer
     carries the tag is not returned.
  3. **Stale members are removed safely.** A member is removed only after its
     head was seen without the tag, and the head is checked again after the
     removal: if a save added the tag in between, the member is put back.

Listings remember the ids of the current page and of a bounded window of
recent pages, so their memory does not grow with the index: SSCAN returns a
member twice only while the set is being resized, and then close together.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable

from recostate._redis import Executor
from recostate._storage import scripts
from recostate._storage.keys import KeySpace, StateKeys

__all__ = ["ClusterTagIndex", "RecentIds", "ScriptTagIndex", "TagIndex"]

# Members per SSCAN page, each page verified in one round trip (per node on a cluster).
_PAGE = 500


class RecentIds:
    """The ids a listing yielded lately: a bounded window, oldest forgotten first.

    Duplicates from SCAN and SSCAN come from a resize in the middle of the
    iteration and arrive within a few pages of the first copy, so a window of
    recent ids drops them without holding every id of a large keyspace.
    """

    __slots__ = ("_ids", "_limit")

    def __init__(self, limit: int = 16384) -> None:
        self._ids: OrderedDict[bytes, None] = OrderedDict()
        self._limit = limit

    def first_time(self, member: bytes) -> bool:
        """Record ``member``; ``False`` if it is in the window already."""
        if member in self._ids:
            return False
        self._ids[member] = None
        if len(self._ids) > self._limit:
            self._ids.popitem(last=False)
        return True


def _tags_of(raw: object) -> list[str]:
    if not isinstance(raw, (bytes, str)):
        return []
    try:
        tags = json.loads(raw)
    except ValueError:
        return []
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


class TagIndex:
    """The tag index of one store. Subclasses say where memberships are kept."""

    #: Whether the write scripts keep the memberships themselves.
    in_scripts = True

    def __init__(self, executor: Executor, keys: KeySpace) -> None:
        self._executor = executor
        self._keys = keys

    async def adding(self, keys: StateKeys, tags: Iterable[str]) -> None:
        """Before and after a save whose head carries ``tags``."""

    async def head_tags(self, keys: StateKeys) -> list[str]:
        """Before a removal: the tags the head carries now, for :meth:`removed`."""
        return []

    async def removed(self, keys: StateKeys, tags: Iterable[str]) -> None:
        """After a removal (delete, delete_version, prune): drop memberships that went stale."""

    def members(self, tag: str) -> AsyncIterator[str]:
        """Yield the ids whose head carries ``tag``; drop stale members on the way."""
        raise NotImplementedError


class ScriptTagIndex(TagIndex):
    """One server: the scripts keep the memberships atomically with each write."""

    async def members(self, tag: str) -> AsyncIterator[str]:
        """Yield the ids whose head carries ``tag``, one script call per page."""
        recent = RecentIds()
        tag_key = self._keys.tag(tag)
        head, middle = self._keys.state_key_parts()
        cursor: bytes | int = 0
        while True:
            cursor, members = await self._executor.run(
                scripts.TAG_MEMBERS, [tag_key], [head, middle, tag, cursor, _PAGE]
            )
            for member in members:
                if recent.first_time(member):
                    yield member.decode("utf-8", "surrogatepass")
            if int(cursor) == 0:
                return


class ClusterTagIndex(TagIndex):
    """A Redis Cluster: memberships kept around each write by the three rules above."""

    in_scripts = False

    async def adding(self, keys: StateKeys, tags: Iterable[str]) -> None:
        """Add the state to each tag's set (before and again after its save, rule 1)."""
        for tag in tags:
            await self._executor.command("SADD", self._keys.tag(tag), keys.member)

    async def head_tags(self, keys: StateKeys) -> list[str]:
        """Return the tags the state's head carries now (``[]`` if it does not exist)."""
        return _tags_of(await self._executor.command("HGET", keys.state, "tags"))

    async def removed(self, keys: StateKeys, tags: Iterable[str]) -> None:
        """Remove the state from the sets of those ``tags`` its head no longer carries."""
        for tag in tags:
            await self._drop_if_stale(keys, tag)

    async def _drop_if_stale(self, keys: StateKeys, tag: str) -> None:
        if tag in await self.head_tags(keys):
            return
        await self._executor.command("SREM", self._keys.tag(tag), keys.member)
        # Rule 3: a save may have tagged the head between the check and the SREM.
        if tag in await self.head_tags(keys):
            await self._executor.command("SADD", self._keys.tag(tag), keys.member)

    async def members(self, tag: str) -> AsyncIterator[str]:
        """Yield the ids whose head carries ``tag``; drop stale members."""
        recent = RecentIds()
        tag_key = self._keys.tag(tag)
        cursor: bytes | int = 0
        while True:
            cursor, page = await self._executor.command("SSCAN", tag_key, cursor, "COUNT", _PAGE)
            fresh = [member for member in page if recent.first_time(member)]
            ids = [member.decode("utf-8", "surrogatepass") for member in fresh]
            states = [self._keys.state(state_id) for state_id in ids]
            heads = await self._executor.hget_many([k.state for k in states], "tags")
            for state_id, state_keys, raw in zip(ids, states, heads, strict=True):
                if tag in _tags_of(raw):
                    yield state_id
                else:
                    await self._drop_if_stale(state_keys, tag)
            if int(cursor) == 0:
                return
