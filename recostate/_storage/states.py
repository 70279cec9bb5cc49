"""The storage layer's interface for states: every operation as one script call on a state's keys.

:class:`StateStorage` is what the public store, the command line and the
integrations call below the public API. It knows the key layout
(``recostate._storage.keys``), the scripts (``recostate._storage.scripts``),
their replies (``recostate._storage.replies``) and the tag index
(``recostate._storage.tags``); it does not encode, decode or validate (the
public store and the codec do).

Two things happen here that callers never see:

* **0.1 states are upgraded when first touched.** A script that finds a state
  still in recostate 0.1's layout answers ``legacy``; the state is moved into
  the current layout atomically (``upgrade``) and the call is made again.
  ``recostate migrate`` does the same for every state at once.
* **With ``wait_for_replicas``,** each write is followed on the same
  connection by ``WAIT``; the number of replicas that acknowledged it comes
  back with the result, for the caller to judge.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timezone
from typing import Any

from recostate._codec.frame import KIND_MANIFEST
from recostate._codec.manifest import ManifestError, body_refs, manifest_body
from recostate._codec.versions import EncodedVersion, KnownPieces, StoredVersion
from recostate._redis import Executor
from recostate._redis.script import Script
from recostate._storage import replies, scripts
from recostate._storage.keys import KeySpace, StateKeys
from recostate._storage.memory import PieceMemory
from recostate._storage.tags import ClusterTagIndex, RecentIds, ScriptTagIndex, TagIndex

__all__ = ["KEEP_TTL", "StateStorage", "Written", "head_fields"]

logger = logging.getLogger("recostate.storage")

#: ``ttl_ms`` for a write that keeps the state's remaining time to live.
KEEP_TTL = "keep"

# A load's reply carries at most this many chunks; more are read with HMGET.
_INLINE_CHUNKS = 32

Arg = bytes | str | int


_second: list[Any] = [None, ""]


def _iso(ms: int) -> str:
    # Saves come many to a second: the date and time up to the second are
    # formatted once per second.
    second, milli = divmod(ms, 1000)
    if _second[0] != second:
        _second[1] = datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        _second[0] = second
    return f"{_second[1]}{milli:03d}Z"


def head_fields(version: EncodedVersion) -> tuple[str, ...]:
    """Return the new head's readable fields, as ``lua/save.lua`` takes them."""
    info = version.info
    header = info.header
    return (
        _iso(header.updated_at_ms),
        str(header.size_bytes),
        str(info.stored_bytes),
        info.compression.value,
        info.checksum,
        str(header.ttl) if header.ttl else "",
        str(header.rolled_back_from) if header.rolled_back_from else "",
    )


def _holds_all(held: KnownPieces | None, frame: bytes) -> bool:
    """Tell whether the client holds every piece a manifest frame refers to, through its nodes."""
    if held is None:
        return False
    body = manifest_body(frame)
    if held.same_manifest(body):
        return True  # the state the client last read or wrote, unchanged
    try:
        pending = body_refs(body)
    except ManifestError:
        return True  # an unreadable manifest: the codec's checks will say so
    while pending:
        ident = pending.pop()
        node = held.nodes.get(ident)
        if node is not None:
            pending.extend(body_refs(node))
        elif ident not in held.chunks:
            return False
    return True


class Written:
    """The result of a removal, with the replicas that acknowledged it (``wait_for_replicas``)."""

    __slots__ = ("replicas", "result")

    def __init__(self, result: int, replicas: int | None) -> None:
        self.result = result
        self.replicas = replicas


class StateStorage:
    """The states of one store, under one key prefix, on one server or cluster.

    Args:
        executor: the plumbing every round trip goes through.
        keyspace: the key names under the store's prefix.
        cluster: whether the server is a Redis Cluster (tag sets live apart).
        wait_for_replicas: after each write, ``WAIT`` for this many replicas (0: no wait).
        wait_timeout_ms: how long that ``WAIT`` may block.
    """

    def __init__(
        self,
        executor: Executor,
        keyspace: KeySpace,
        *,
        cluster: bool,
        wait_for_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        self._executor = executor
        self.keyspace = keyspace
        self.cluster = cluster
        self.tags: TagIndex = (ClusterTagIndex if cluster else ScriptTagIndex)(executor, keyspace)
        self.pieces = PieceMemory()
        self._wait = wait_for_replicas
        self._wait_timeout_ms = wait_timeout_ms
        self._tag_base = keyspace.tag_base
        self._outside = b"1" if cluster else b"0"

    def keys(self, state_id: str) -> StateKeys:
        """Return the keys of ``state_id`` (it must be a validated id)."""
        return self.keyspace.state(state_id)

    # -- running scripts --------------------------------------------------------------

    def _args(self, keys: StateKeys, extra: Sequence[Arg]) -> list[Arg]:
        return [keys.member, self._tag_base, self._outside, *extra]

    async def _read(self, script: Script, keys: StateKeys, *extra: Arg) -> Any:
        # A read sends ids and numbers: only a long list of held pieces is
        # worth counting (a request that large skips the automatic pipeline).
        size = None if len(extra) > 64 else 0
        reply = await self._executor.run(script, keys.all, self._args(keys, extra), size)
        if replies.is_legacy(reply):
            await self.upgrade(keys)
            reply = await self._executor.run(script, keys.all, self._args(keys, extra), size)
        return reply

    async def _write(self, script: Script, keys: StateKeys, *extra: Arg) -> tuple[Any, int | None]:
        return await self._write_args(script, keys, self._args(keys, extra))

    async def _write_args(
        self, script: Script, keys: StateKeys, args: list[Arg], payload_bytes: int | None = None
    ) -> tuple[Any, int | None]:
        for _ in range(2):
            if self._wait:
                reply, acked = await self._executor.run_and_wait(
                    script,
                    keys.all,
                    args,
                    replicas=self._wait,
                    timeout_ms=self._wait_timeout_ms,
                )
            else:
                reply = await self._executor.run(script, keys.all, args, payload_bytes)
                acked = None
            if not replies.is_legacy(reply):
                return reply, acked
            await self.upgrade(keys)
        raise RuntimeError("the state was upgraded but still reads as a 0.1 state")

    # -- writes -----------------------------------------------------------------------

    async def save(
        self,
        keys: StateKeys,
        version: EncodedVersion,
        *,
        write_id: bytes,
        expected: int | None,
        explicit: int | None,
        keep: int,
        ttl_ms: int | str | None,
    ) -> replies.Saved:
        """Store ``version`` as the state's new head in one atomic step.

        Args:
            keys: the state's keys.
            version: the encoded version, and for a chunked one the pieces to send.
            write_id: this write's id (a retry with the same id writes nothing).
            expected: compare-and-set: the head it must find (0: no state).
            explicit: the version number to take, or ``None`` for the next.
            keep: how many versions the state keeps after this one.
            ttl_ms: the expiry of every key, ``None`` for none, :data:`KEEP_TTL`.

        Raises:
            replies.Conflict: the compare-and-set or the explicit version failed.
            replies.PiecesMissing: the server lacks a piece that was not sent.
            replies.DictionaryMismatch: the state uses another compression dictionary.
        """
        header = version.info.header
        tags = header.tags
        in_scripts = self.tags.in_scripts
        if not in_scripts:
            await self.tags.adding(keys, tags)
        args: list[Arg] = [
            keys.member,
            self._tag_base,
            self._outside,
            write_id,
            "" if expected is None else expected,
            "" if explicit is None else explicit,
            keep,
            "" if ttl_ms is None else ttl_ms,
            header.updated_at_ms,
            version.frame,
            *head_fields(version),
            version.dictionary_id,
            version.dictionary_frame,
            len(tags),
            *tags,
        ]
        for ident, frame in version.pieces:
            args += (ident, frame)
        reply, acked = await self._write_args(scripts.SAVE, keys, args, version.sent_bytes)
        saved = replies.parse_save(reply)
        saved.replicas = acked
        if version.refs:
            self.pieces.remember(
                keys.state_id,
                KnownPieces(
                    dict(version.refs),
                    version.dictionary_id,
                    version.dictionary,
                    version.chunks,
                    version.nodes,
                    version.raw,
                    version.body,
                    version.info.header.state_crc,
                    version.cut,
                ),
            )
        if not in_scripts:
            await self.tags.adding(keys, tags)
        return saved

    async def _removal(self, script: Script, keys: StateKeys, *extra: Arg) -> Written:
        tags = await self.tags.head_tags(keys)
        reply, acked = await self._write(script, keys, *extra)
        self.pieces.forget(keys.state_id)
        await self.tags.removed(keys, tags)
        return Written(int(reply), acked)

    async def delete_version(self, keys: StateKeys, version: int) -> Written:
        """Delete one version; ``result`` is 1 if it existed."""
        return await self._removal(scripts.DELETE_VERSION, keys, version)

    async def prune(self, keys: StateKeys, keep: int) -> Written:
        """Keep the newest ``keep`` versions; ``result`` is how many went."""
        return await self._removal(scripts.PRUNE, keys, keep)

    async def delete(self, keys: StateKeys) -> Written:
        """Delete every key of the state; ``result`` is 1 if it existed."""
        return await self._removal(scripts.DELETE, keys)

    async def touch(self, keys: StateKeys, ttl_ms: int | None) -> Written:
        """Apply ``ttl_ms`` (``None``: no expiry) to every key; ``result`` is 1 if it exists."""
        reply, acked = await self._write(scripts.TOUCH, keys, "" if ttl_ms is None else ttl_ms)
        return Written(int(reply), acked)

    # -- reads ------------------------------------------------------------------------

    async def load(
        self, keys: StateKeys, version: int | None, *, held: KnownPieces | None = None
    ) -> replies.Loaded | None:
        """Read a version (the head for ``None``) with its pieces and the state's dictionary.

        The head is one plain ``HGET`` of its record when its frame is whole
        or every piece it needs is held; otherwise (and for other versions)
        the load script reads it.
        ``held``: what the client holds of the state: those pieces (and the
        dictionary) are not sent, and the reply's ``stored.held`` is ``held``.
        When many chunks are needed the script names them and they are read
        with a plain ``HMGET`` (a second round trip, far cheaper for the
        server than copying them through Lua); if a concurrent trim took some
        in between, the whole read is made again, once.
        """
        if version is None:
            # The head in one plain HGET: its record carries its number and
            # the state's creation time beside its frame.
            head = await self._head(keys, held)
            if head is not None:
                return head
        skip: list[Arg] = []
        dictionary_id = b""
        if held is not None:
            skip = [*held.nodes, *held.chunks]
            dictionary_id = held.dictionary_id
        asked: list[Arg] = ["" if version is None else version, dictionary_id, _INLINE_CHUNKS, *skip]
        for attempt in range(2):
            loaded = replies.parse_load(await self._read(scripts.LOAD, keys, *asked))
            if loaded is None:
                return None
            loaded.stored.held = held
            if not loaded.to_fetch:
                return loaded
            found = await self._executor.command("HMGET", keys.all[3], *loaded.to_fetch)
            missing = False
            for ident, data in zip(loaded.to_fetch, found, strict=True):
                if data is None:
                    missing = True
                else:
                    loaded.stored.pieces[ident] = data
            if not missing or attempt:
                return loaded  # a piece still missing is the codec's IntegrityError
        return None  # unreachable: the loop returns

    async def held(self, keys: StateKeys, ids: list[bytes]) -> replies.Held:
        """Ask which of the pieces ``ids`` the state holds (and its dictionary), reading none."""
        reply = await self._executor.run(scripts.HELD, keys.all, self._args(keys, ids), 16 * len(ids))
        return replies.parse_held(reply, ids)

    async def _head(self, keys: StateKeys, held: KnownPieces | None) -> replies.Loaded | None:
        """Return the head from its record if it needs no piece the client lacks, else ``None``.

        A whole frame needs nothing else (dictionaries only ever compress
        chunks). A manifest is read here only when the client holds every
        node and chunk it reaches, contents included, so neither a piece nor
        the dictionary has to come from the server; the script reads the rest.
        """
        record = await self._executor.command("HGET", keys.all[2], scripts.HEAD_FIELD)
        if not record or len(record) <= scripts.HEAD_RECORD.size:
            return None  # no such state (or a 0.1 one): the script says which
        version, created = scripts.HEAD_RECORD.unpack_from(record)
        frame = record[scripts.HEAD_RECORD.size :]
        if frame[2:3] == bytes((KIND_MANIFEST,)) and not _holds_all(held, frame):
            return None
        return replies.Loaded(int(version), int(created), StoredVersion(frame, held=held))

    def remember(self, keys: StateKeys, known: KnownPieces) -> None:
        """Record what a successful load showed the server holds for the state."""
        self.pieces.remember(keys.state_id, known)

    async def frame(self, keys: StateKeys, version: int) -> replies.VersionFrame | None:
        """Read a version's frame alone (a chunked version's pieces stay where they are)."""
        return replies.parse_frame(await self._read(scripts.FRAME, keys, version))

    async def metadata(self, keys: StateKeys, version: int | None) -> replies.Header | None:
        """Read a version's header and stored size, without its payload."""
        return replies.parse_header(
            await self._read(scripts.METADATA, keys, "" if version is None else version)
        )

    async def versions(self, keys: StateKeys) -> list[replies.Header]:
        """Read every version's header, oldest first."""
        return replies.parse_versions(await self._read(scripts.VERSIONS, keys))

    async def state_info(self, keys: StateKeys) -> replies.StateInfo | None:
        """Read the state's version numbers, creation time and remaining time to live."""
        return replies.parse_state_info(await self._read(scripts.READ_STATE, keys))

    async def inventory(self, keys: StateKeys) -> replies.Inventory:
        """Read every version frame and every piece of the state, with reference counts."""
        return replies.parse_inventory(await self._read(scripts.INVENTORY, keys))

    async def exists(self, keys: StateKeys) -> bool:
        """Tell whether the state has a state hash (at least one version)."""
        return bool(await self._executor.command("EXISTS", keys.state))

    def ids(self, tag: str | None = None) -> AsyncIterator[str]:
        """Yield the ids of existing states (whose head carries ``tag``, if given)."""
        if tag is not None:
            return self.tags.members(tag)
        return self._all_ids()

    async def _all_ids(self) -> AsyncIterator[str]:
        recent = RecentIds()
        async for key in self._executor.scan(self.keyspace.state_pattern(), type_="hash"):
            if recent.first_time(key):
                yield self.keyspace.id_from_state_key(key)

    # -- for integrations with a layout of their own ----------------------------------

    async def run_script(
        self, script: Script, keys: Sequence[bytes], args: Sequence[Arg | float]
    ) -> Any:
        """Run an integration's own script on its own keys, with this store's pool and retries.

        For layouts that live beside the states (the LangGraph checkpointer's
        threads): ``keys`` must share one hash slot, and the script should
        build on :func:`recostate._storage.scripts.pieces_source` to store
        chunked values, so they share their bytes as versions of a state do.
        """
        return await self._executor.run(script, keys, args)

    def scan(self, match: bytes) -> AsyncIterator[bytes]:
        """Yield the keys matching ``match`` (``SCAN`` on every primary, never ``KEYS``)."""
        return self._executor.scan(match)

    # -- format 1 (recostate 0.1) ----------------------------------------------------

    async def upgrade(self, keys: StateKeys) -> int:
        """Move a state written by recostate 0.1 into the current layout; return versions moved."""
        legacy = self.keyspace.legacy(keys.state_id)
        moved = int(
            await self._executor.run(
                scripts.UPGRADE,
                [*keys.all, legacy.index, legacy.writes],
                self._args(keys, [legacy.version_base, legacy.version_suffix]),
            )
        )
        if moved:
            logger.info("state id=%r upgraded from the 0.1 layout (%d versions)", keys.state_id, moved)
        return moved
