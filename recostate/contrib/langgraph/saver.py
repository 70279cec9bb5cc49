"""LangGraph checkpoint savers on a recostate store: :class:`AsyncRecostateSaver` and its blocking twin.

Both classes share one implementation, written as coroutines
(:class:`_RecostateSaverBase`); they differ only in where those coroutines run:

* :class:`AsyncRecostateSaver` runs them on the caller's event loop
  (``graph.ainvoke``); its blocking methods, called from another thread, hand
  them to that loop.
* :class:`RecostateSaver` runs them on the event loop of a blocking
  :class:`recostate.sync.RedisStatePersistence` (one loop in a helper thread),
  so ``graph.invoke`` works from plain threads; its async methods await that
  loop.

How a thread is stored is described in ``_layout``; channel values and
pending writes go through the blob store (``_blobs``).

This module is longer than most on purpose: LangGraph's ``BaseCheckpointSaver``
asks for every operation twice (blocking and async) on each of the two
classes, and those thin entry points, with the docstrings users read, sit
beside the one coroutine each calls.
"""

from __future__ import annotations

import asyncio
import builtins
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import aclosing, asynccontextmanager, contextmanager
from typing import Any, TypeVar, cast

import msgspec
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.types import _DeltaSnapshot

from recostate._persistence import RedisStatePersistence
from recostate.contrib.langgraph import _blobs
from recostate.contrib.langgraph import _layout as layout
from recostate.contrib.langgraph._backend import Script, StoreBackend
from recostate.sync import RedisStatePersistence as SyncRedisStatePersistence

__all__ = ["AsyncRecostateSaver", "RecostateSaver"]

T = TypeVar("T")

#: Checkpoints read per round trip when listing.
_PAGE = 64
#: Threads worked on at once by the calls that span every thread.
_FANOUT = 32
#: Strings up to this many characters stay inside the checkpoint record
#: instead of becoming a shared blob (as None, bools and numbers always do).
_INLINE_STR = 64
_PRUNE_STRATEGIES = ("keep_latest", "delete")


def _inlined(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float)):
        return True
    return isinstance(value, str) and len(value) <= _INLINE_STR


def _config(thread_id: Any, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def _matches(metadata: CheckpointMetadata, wanted: dict[str, Any] | None) -> bool:
    if not wanted:
        return True
    return all(metadata.get(key) == value for key, value in wanted.items())


class _RecostateSaverBase(BaseCheckpointSaver[str]):
    """The saver's operations as coroutines, and the public methods of both twins.

    Subclasses say where coroutines run (:meth:`_run_blocking`,
    :meth:`_run_async`).
    """

    def __init__(self, store: RedisStatePersistence, *, serde: SerializerProtocol | None) -> None:
        super().__init__(serde=serde)
        self._backend = StoreBackend(store)
        self._blobs = _blobs.BlobCodec(self._backend.codec)
        self._recent: dict[str, builtins.list[bytes]] = {}

    # -- where coroutines run (the twins differ here only) ------------------------------

    def _run_blocking(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        raise NotImplementedError

    async def _run_async(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        raise NotImplementedError

    # -- BaseCheckpointSaver, blocking ----------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Return the checkpoint ``config`` names (the newest of its namespace without an id)."""
        return self._run_blocking(self._get_tuple, config)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Yield matching checkpoints, newest first (see :meth:`alist`)."""
        items = self._list(config, filter, before, limit)
        try:
            while True:
                try:
                    yield self._run_blocking(items.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            self._run_blocking(items.aclose)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (see :meth:`aput`)."""
        return self._run_blocking(self._put, config, checkpoint, metadata, new_versions)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes (see :meth:`aput_writes`)."""
        self._run_blocking(self._put_writes, config, writes, task_id, task_path)

    def delete_thread(self, thread_id: str) -> None:
        """Delete every key of a thread."""
        self._run_blocking(self._delete_thread, thread_id)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints written by these runs (see :meth:`adelete_for_runs`)."""
        self._run_blocking(self._delete_for_runs, run_ids)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread (see :meth:`acopy_thread`)."""
        self._run_blocking(self._copy_thread, source_thread_id, target_thread_id)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads (see :meth:`aprune`)."""
        self._run_blocking(self._prune, thread_ids, strategy)

    # -- BaseCheckpointSaver, async -------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Return the checkpoint ``config`` names, or ``None``.

        With a ``checkpoint_id`` that checkpoint, otherwise the newest of the
        namespace (``checkpoint_ns``, ``""`` by default), with its channel
        values and pending writes, in one round trip.
        """
        return await self._run_async(self._get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Yield matching checkpoints, newest (highest ``checkpoint_id``) first.

        ``config`` names a thread (and, with ``checkpoint_ns``, one namespace;
        without it, all of them); ``None`` lists every thread under the
        store's prefix, one thread after another, found with ``SCAN``.
        ``filter`` keeps checkpoints whose metadata has each key equal to the
        given value; ``before`` keeps ids lower than its ``checkpoint_id``;
        ``limit`` caps how many are yielded.
        """
        items = self._list(config, filter, before, limit)
        try:
            while True:
                try:
                    yield await self._run_async(items.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            await self._run_async(items.aclose)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint, atomically, in one round trip; return its config.

        Channel values named in ``new_versions`` are sent; the others are
        referred to where an earlier checkpoint of the thread stored them
        (and sent after all if the server no longer has them). None, bools,
        numbers and short strings are kept inside the checkpoint record.
        """
        return await self._run_async(self._put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes for a checkpoint, in one round trip.

        Idempotent per task and write index: a write sent again (a retry, a
        task run twice) is stored once. LangGraph's special writes (errors,
        interrupts, resumes, scheduled) take their fixed negative index and
        replace an earlier write of the same kind, as LangGraph's own savers do.
        """
        await self._run_async(self._put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every key of a thread (all namespaces, checkpoints, values and writes)."""
        await self._run_async(self._delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints whose metadata ``run_id`` is one of ``run_ids``, with their writes.

        Runs are indexed per thread; finding the threads that hold them scans
        the index keys under the store's prefix, so the cost grows with the
        number of threads. Checkpoints of other runs are kept, even when
        their parent is deleted.
        """
        await self._run_async(self._delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Make the target thread a copy of the source: every namespace, checkpoint and write.

        The target's own checkpoints are replaced, in one atomic step. A
        source with no checkpoints leaves the target alone.
        """
        await self._run_async(self._copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads.

        ``"delete"`` removes the threads. ``"keep_latest"`` keeps the newest
        checkpoint of each namespace with its pending writes and values, and
        deletes the rest (each thread atomically); a kept checkpoint whose
        parent goes is left with none. A subgraph call's namespace (its task id
        after a ``:``) goes with the root checkpoint it started from, when that
        one is saved and is not the one kept. Threads that used a LangGraph
        ``DeltaChannel`` are refused (``NotImplementedError``, nothing pruned),
        because their newest value is rebuilt from older checkpoints.

        Raises:
            TypeError: ``thread_ids`` is a single ``str``.
            ValueError: an unknown strategy.
            NotImplementedError: ``keep_latest`` on a thread that used a DeltaChannel.
        """
        await self._run_async(self._prune, thread_ids, strategy)

    def get_next_version(self, current: str | int | float | None, channel: None) -> str:
        """Return the channel version after ``current``.

        A zero-padded counter (so versions compare as strings) and a random
        suffix, so two forks of one checkpoint never give the same version
        to different values.
        """
        if current is None:
            number = 0
        elif isinstance(current, (int, float)):
            number = int(current)
        else:
            number = int(current.split(".")[0])
        return f"{number + 1:016d}.{random.getrandbits(32):08x}"

    # -- the operations -------------------------------------------------------------------

    def _keys(self, thread_id: Any) -> builtins.list[bytes]:
        tid = str(thread_id)
        keys = self._recent.get(tid)
        if keys is None:
            if len(self._recent) >= 1024:
                self._recent.clear()
            keys = self._recent[tid] = layout.ThreadKeys(self._backend.key_prefix, tid).all
        return keys

    def _ttl_ms(self) -> int:
        ttl = self._backend.default_ttl
        return ttl * 1000 if ttl else 0

    async def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        thread_id = configurable["thread_id"]
        checkpoint_ns: str = configurable.get("checkpoint_ns") or ""
        parent_id: str | None = configurable.get("checkpoint_id")
        values = checkpoint["channel_values"]
        versions = checkpoint["channel_versions"]
        inline: dict[str, Any] = {}
        fields: dict[bytes, str] = {}  # blob field -> channel
        for channel, value in values.items():
            if _inlined(value) or channel not in versions:
                inline[channel] = value
            else:
                fields[layout.blob_field(checkpoint_ns, channel, versions[channel])] = channel
        record_checkpoint = {**checkpoint, "channel_values": inline}
        meta = get_serializable_checkpoint_metadata(config, metadata)
        run_id = meta.get("run_id")
        parents = meta.get("parents") or {}
        body = msgspec.msgpack.encode(
            (*self.serde.dumps_typed(record_checkpoint), *self.serde.dumps_typed(meta))
        )
        record = layout.encode_record(
            parent_id=parent_id,
            run_id="" if run_id is None else str(run_id),
            root_id=str(parents.get("") or ""),
            delta="counters_since_delta_snapshot" in meta
            or any(isinstance(v, _DeltaSnapshot) for v in values.values()),
            blobs=fields,
            body=body,
        )
        key = layout.checkpoint_key(checkpoint_ns, checkpoint["id"])
        send = [field for field, channel in fields.items() if channel in new_versions]
        dumped = {field: self.serde.dumps_typed(values[fields[field]]) for field in send}
        for _ in range(4):

            def args_of(encoded: _blobs.Encoded) -> builtins.list[bytes | int]:
                tagged = [
                    _blobs.tagged(dumped[field][0], frame)
                    for field, frame in zip(send, encoded.frames, strict=True)
                ]
                return [self._ttl_ms(), key, record, len(send), *send, *tagged, *encoded.tail]

            values_sent = [(field, dumped[field][1]) for field in send]
            reply = await self._store_values(thread_id, layout.PUT, values_sent, args_of)
            if reply == b"ok":
                return _config(thread_id, checkpoint_ns, checkpoint["id"])
            # Values this checkpoint shares with older ones are gone (pruned,
            # deleted, expired): send them too.
            for raw in reply[1]:
                field = bytes(raw)
                send.append(field)
                dumped[field] = self.serde.dumps_typed(values[fields[field]])
        raise RuntimeError(f"checkpoint {checkpoint['id']!r}: shared values kept disappearing")

    async def _store_values(
        self,
        thread_id: Any,
        script: Script,
        values: builtins.list[tuple[bytes, bytes]],
        args_of: Callable[[_blobs.Encoded], builtins.list[bytes | int]],
    ) -> Any:
        """Run a script that stores ``(field, data)`` values; return its reply.

        A reply that refuses the pieces sent (the thread lacks some this
        client took for stored, or holds another dictionary) is learnt from
        and the values are encoded and sent again, up to twice.
        """
        tid = str(thread_id)
        for _ in range(3):
            encoded = await self._blobs.encode(tid, values)
            reply = await self._backend.run(script, self._keys(thread_id), args_of(encoded))
            if not self._blobs.refused(tid, reply):
                if reply == b"ok":
                    self._blobs.stored(tid, encoded)
                return reply
        raise RuntimeError(f"thread {tid!r}: the values' pieces kept disappearing")

    async def _put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> None:
        if not writes:
            return
        configurable = config["configurable"]
        checkpoint_ns: str = configurable.get("checkpoint_ns") or ""
        checkpoint_id: str = configurable["checkpoint_id"]
        items: builtins.list[tuple[bytes, bytes, bytes]] = []  # field, item, upsert
        values: builtins.list[tuple[bytes, bytes]] = []
        for position, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, position)
            type_, data = self.serde.dumps_typed(value)
            item = layout.write_item(task_id, channel, type_, task_path, idx)
            field = layout.write_field(checkpoint_ns, checkpoint_id, task_id, idx)
            items.append((field, item, b"1" if idx < 0 else b"0"))
            values.append((field, data))

        def args_of(encoded: _blobs.Encoded) -> builtins.list[bytes | int]:
            args: builtins.list[bytes | int] = [self._ttl_ms(), len(items)]
            for (field, item, upsert), frame in zip(items, encoded.frames, strict=True):
                args += [field, item + frame, upsert]
            return args + encoded.tail

        await self._store_values(configurable["thread_id"], layout.PUT_WRITES, values, args_of)

    async def _tuple(
        self, thread_id: Any, entry: builtins.list[Any], read: _blobs.ReadPieces
    ) -> CheckpointTuple:
        key, record, blob_items, write_items = entry
        checkpoint_ns, checkpoint_id = layout.split_checkpoint_key(bytes(key))
        head = layout.parse_record(bytes(record))
        ckpt_type, ckpt_data, meta_type, meta_data = msgspec.msgpack.decode(head.body)
        checkpoint: Checkpoint = self.serde.loads_typed((ckpt_type, ckpt_data))
        values = dict(checkpoint["channel_values"])
        for field, item in zip(head.blobs, blob_items, strict=True):
            if item is not None:
                type_, frame = _blobs.untagged(bytes(item))
                data = await self._blobs.decode(field, frame, read)
                values[layout.blob_channel(field)] = self.serde.loads_typed((type_, data))
        checkpoint["channel_values"] = values
        return CheckpointTuple(
            config=_config(thread_id, checkpoint_ns, checkpoint_id),
            checkpoint=checkpoint,
            metadata=self.serde.loads_typed((meta_type, meta_data)),
            parent_config=(
                _config(thread_id, checkpoint_ns, head.parent_id) if head.parent_id else None
            ),
            pending_writes=await self._writes(checkpoint_ns, checkpoint_id, write_items, read),
        )

    async def _writes(
        self,
        checkpoint_ns: str,
        checkpoint_id: str,
        items: builtins.list[Any],
        read: _blobs.ReadPieces,
    ) -> builtins.list[PendingWrite]:
        writes = []
        for raw in items:
            if raw is None:
                continue
            write = layout.parse_write(bytes(raw))
            field = layout.write_field(checkpoint_ns, checkpoint_id, write.task_id, write.idx)
            data = await self._blobs.decode(field, write.frame, read)
            writes.append((write, data))
        writes.sort(key=lambda w: writes_sort_key(w[0].task_path, w[0].task_id, w[0].idx))
        return [
            (write.task_id, write.channel, self.serde.loads_typed((write.type_, data)))
            for write, data in writes
        ]

    def _metadata(self, record: bytes) -> CheckpointMetadata:
        body = layout.parse_record(record).body
        _, _, meta_type, meta_data = msgspec.msgpack.decode(body)
        return cast(CheckpointMetadata, self.serde.loads_typed((meta_type, meta_data)))

    async def _read(
        self, thread_id: Any, args: builtins.list[bytes]
    ) -> tuple[builtins.list[Any], _blobs.ReadPieces]:
        """Return a read's entries, and the pieces and dictionary their values need."""
        entries, pieces, dictionary = await self._backend.run(
            layout.READ, self._keys(thread_id), args
        )
        read = _blobs.ReadPieces(pieces, dictionary)
        self._blobs.learn(str(thread_id), read)
        return entries, read

    async def _get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        configurable = config["configurable"]
        thread_id = configurable["thread_id"]
        checkpoint_ns: str = configurable.get("checkpoint_ns") or ""
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id:
            args = [b"ids", layout.checkpoint_key(checkpoint_ns, checkpoint_id)]
        else:
            args = [b"latest", layout.ns_tag(checkpoint_ns)]
        entries, read = await self._read(thread_id, args)
        if not entries or not entries[0]:
            return None
        return await self._tuple(thread_id, entries[0], read)

    async def _list(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> AsyncGenerator[CheckpointTuple, None]:
        if limit is not None and limit <= 0:
            return
        before_id = get_checkpoint_id(before) if before else None
        left = [limit]  # shared by the threads listed, when config is None
        if config is None:
            async with aclosing(self._thread_ids()) as threads:
                async for thread_id in threads:
                    items = self._list_thread(thread_id, None, None, filter, before_id, left)
                    async with aclosing(items):
                        async for item in items:
                            yield item
                    if left[0] == 0:
                        return
            return
        configurable = config["configurable"]
        items = self._list_thread(
            configurable["thread_id"],
            configurable.get("checkpoint_ns"),
            get_checkpoint_id(config),
            filter,
            before_id,
            left,
        )
        async with aclosing(items):
            async for item in items:
                yield item

    async def _list_thread(
        self,
        thread_id: Any,
        checkpoint_ns: str | None,
        checkpoint_id: str | None,
        filter: dict[str, Any] | None,
        before_id: str | None,
        left: builtins.list[int | None],
    ) -> AsyncGenerator[CheckpointTuple, None]:
        if checkpoint_ns is None or checkpoint_id:
            pages = self._pages_by_key(thread_id, checkpoint_ns, checkpoint_id, before_id)
        else:
            pages = self._pages_by_namespace(thread_id, checkpoint_ns, filter, before_id, left)
        async with aclosing(pages):
            async for keys in pages:
                if not keys:
                    continue
                entries, read = await self._read(thread_id, [b"ids", *keys])
                for entry in entries:
                    if not entry:
                        continue  # deleted since the page was read
                    item = await self._tuple(thread_id, entry, read)
                    if not _matches(item.metadata, filter):
                        continue
                    yield item
                    if left[0] is not None:
                        left[0] -= 1
                        if left[0] == 0:
                            return

    async def _pages_by_namespace(
        self,
        thread_id: Any,
        checkpoint_ns: str,
        filter: dict[str, Any] | None,
        before_id: str | None,
        left: builtins.list[int | None],
    ) -> AsyncGenerator[builtins.list[bytes], None]:
        """Yield keys of one namespace's checkpoints, newest first, a page at a time.

        With a filter, only the keys whose metadata matches (read from the
        records, without the values).
        """
        tag = layout.ns_tag(checkpoint_ns)
        cursor = before_id or ""
        while True:
            size = _PAGE if filter or left[0] is None else min(_PAGE, left[0])
            reply = await self._backend.run(
                layout.RANGE, self._keys(thread_id), [b"ns", tag, cursor, size]
            )
            pairs = list(zip(reply[::2], reply[1::2], strict=True))
            yield [
                bytes(key)
                for key, record in pairs
                if record and (not filter or _matches(self._metadata(bytes(record)), filter))
            ]
            if len(pairs) < size:
                return
            cursor = layout.split_checkpoint_key(bytes(pairs[-1][0]))[1]

    async def _pages_by_key(
        self,
        thread_id: Any,
        checkpoint_ns: str | None,
        checkpoint_id: str | None,
        before_id: str | None,
    ) -> AsyncGenerator[builtins.list[bytes], None]:
        """Yield keys of every namespace's checkpoints, by id, newest first, a page at a time."""
        reply = await self._backend.run(layout.RANGE, self._keys(thread_id), [b"all"])
        found = []
        for raw in reply:
            key = bytes(raw)
            ns, cid = layout.split_checkpoint_key(key)
            if checkpoint_ns is not None and ns != checkpoint_ns:
                continue
            if checkpoint_id and cid != checkpoint_id:
                continue
            if before_id is not None and cid >= before_id:
                continue
            found.append((cid, ns, key))
        found.sort(reverse=True)
        for start in range(0, len(found), _PAGE):
            yield [key for _, _, key in found[start : start + _PAGE]]

    async def _thread_ids(self) -> AsyncGenerator[str, None]:
        prefix = self._backend.key_prefix
        seen: set[str] = set()
        async for key in self._backend.scan(layout.thread_pattern(prefix)):
            thread_id = layout.thread_from_index_key(prefix, bytes(key))
            if thread_id not in seen:  # SCAN may return a key twice
                seen.add(thread_id)
                yield thread_id

    async def _on_all_threads(self, func: Callable[[str], Awaitable[Any]]) -> None:
        batch: builtins.list[str] = []
        async for thread_id in self._thread_ids():
            batch.append(thread_id)
            if len(batch) >= _FANOUT:
                await asyncio.gather(*(func(t) for t in batch))
                batch = []
        await asyncio.gather(*(func(t) for t in batch))

    async def _delete_thread(self, thread_id: str) -> None:
        self._blobs.forget(str(thread_id))
        await self._backend.run(layout.DELETE_THREAD, self._keys(thread_id), [])

    async def _delete_for_runs(self, run_ids: Sequence[str]) -> None:
        runs = [str(run_id) for run_id in run_ids]
        if not runs:
            return

        async def on_thread(thread_id: str) -> None:
            await self._backend.run(layout.DELETE_RUNS, self._keys(thread_id), runs)

        await self._on_all_threads(on_thread)

    async def _copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        if str(source_thread_id) == str(target_thread_id):
            return
        reply = await self._backend.run(layout.COPY_OUT, self._keys(source_thread_id), [])
        if all(kind == b"none" for kind, _ in reply):
            return
        args: builtins.list[bytes | int] = [self._ttl_ms()]
        for kind, values in reply:
            args += [bytes(kind), len(values), *values]
        await self._backend.run(layout.COPY_IN, self._keys(target_thread_id), args)

    async def _prune(self, thread_ids: Sequence[str], strategy: str) -> None:
        if isinstance(thread_ids, str):
            raise TypeError("thread_ids must be a sequence of thread ids, not a str")
        if strategy not in _PRUNE_STRATEGIES:
            raise ValueError(f"unknown prune strategy {strategy!r}: use one of {_PRUNE_STRATEGIES}")
        threads = [str(thread_id) for thread_id in thread_ids]
        if strategy == "delete":
            await asyncio.gather(*(self._delete_thread(t) for t in threads))
            return
        checks = await asyncio.gather(
            *(self._backend.run(layout.PRUNE, self._keys(t), [b"check"]) for t in threads)
        )
        refused = sorted(t for t, reply in zip(threads, checks, strict=True) if reply == b"delta")
        if refused:
            raise NotImplementedError(
                f"keep_latest can't prune threads that use a DeltaChannel: {', '.join(refused)}"
            )
        for thread_id in threads:
            if await self._backend.run(layout.PRUNE, self._keys(thread_id), [b"run"]) == b"delta":
                raise NotImplementedError(
                    f"keep_latest can't prune threads that use a DeltaChannel: {thread_id}"
                )


class AsyncRecostateSaver(_RecostateSaverBase):
    """A LangGraph checkpointer on a :class:`recostate.RedisStatePersistence`, for asyncio.

    Example::

        async with AsyncRecostateSaver.from_conn_string("redis://localhost:6379/0") as saver:
            graph = builder.compile(checkpointer=saver)
            await graph.ainvoke(inputs, {"configurable": {"thread_id": "t-1"}})

    Args:
        store: the store whose connection pool, ``key_prefix`` and
            ``default_ttl`` (applied to every key of a thread on every write)
            the saver uses; it is never closed by the saver.
        serde: LangGraph serializer for checkpoints, values and writes
            (``JsonPlusSerializer`` by default; an ``EncryptedSerializer``
            works as well).

    The blocking methods (``get_tuple``, ``put``...) are for other threads
    while the saver's event loop runs (as LangGraph's sync API does with an
    async checkpointer); called on that loop they raise
    ``asyncio.InvalidStateError``.
    """

    def __init__(
        self, store: RedisStatePersistence, *, serde: SerializerProtocol | None = None
    ) -> None:
        if isinstance(store, SyncRedisStatePersistence):
            raise TypeError("store is a blocking recostate.sync store: use RecostateSaver over it")
        super().__init__(store, serde=serde)
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    @property
    def store(self) -> RedisStatePersistence:
        """The store this saver writes to."""
        return self._backend.store

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls, url: str, *, serde: SerializerProtocol | None = None, **options: Any
    ) -> AsyncIterator[AsyncRecostateSaver]:
        """Open a store on ``url`` with these constructor ``options``, yield a saver on it, close it.

        ``options`` are those of :class:`recostate.RedisStatePersistence`
        (``cluster=True``, ``key_prefix``, ``default_ttl``, ``redis_options``...).
        """
        async with RedisStatePersistence(url, **options) as store:
            yield cls(store, serde=serde)

    async def _run_async(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        self._loop = asyncio.get_running_loop()
        return await func(*args)

    def _run_blocking(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        loop = self._loop
        if loop is None or loop.is_closed():
            raise asyncio.InvalidStateError(
                "AsyncRecostateSaver's blocking methods need its event loop running in another "
                "thread; use the async methods, or RecostateSaver for blocking code"
            )
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise asyncio.InvalidStateError(
                "blocking calls to AsyncRecostateSaver from its own event loop would deadlock; "
                "use the async methods (aget_tuple, graph.ainvoke...)"
            )
        return asyncio.run_coroutine_threadsafe(_coroutine(func, *args), loop).result()


class RecostateSaver(_RecostateSaverBase):
    """The blocking twin of :class:`AsyncRecostateSaver`, for ``graph.invoke``.

    It runs the same coroutines on the event loop of a blocking
    :class:`recostate.sync.RedisStatePersistence` (one loop in a helper
    thread); its async methods await that loop, so ``graph.ainvoke`` works too.

    Example::

        with RecostateSaver.from_conn_string("redis://localhost:6379/0") as saver:
            graph = builder.compile(checkpointer=saver)
            graph.invoke(inputs, {"configurable": {"thread_id": "t-1"}})

    Args:
        store: a blocking store, never closed by the saver.
        serde: as for :class:`AsyncRecostateSaver`.
    """

    def __init__(
        self, store: SyncRedisStatePersistence, *, serde: SerializerProtocol | None = None
    ) -> None:
        if not isinstance(store, SyncRedisStatePersistence):
            raise TypeError(
                "store must be a recostate.sync.RedisStatePersistence "
                f"(use AsyncRecostateSaver over an async store), not {type(store).__name__}"
            )
        super().__init__(store.async_store, serde=serde)
        self._sync_store = store

    @property
    def store(self) -> SyncRedisStatePersistence:
        """The blocking store this saver writes to."""
        return self._sync_store

    @classmethod
    @contextmanager
    def from_conn_string(
        cls, url: str, *, serde: SerializerProtocol | None = None, **options: Any
    ) -> Iterator[RecostateSaver]:
        """Open a blocking store on ``url`` with these ``options``, yield a saver on it, close it."""
        with SyncRedisStatePersistence(url, **options) as store:
            yield cls(store, serde=serde)

    def _run_blocking(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        return self._sync_store.run_coroutine(func, *args)

    async def _run_async(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        return await asyncio.wrap_future(self._sync_store.submit_coroutine(func, *args))


async def _coroutine(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    # run_coroutine_threadsafe needs a coroutine, not any awaitable.
    return await func(*args)
