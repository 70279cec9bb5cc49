"""``RedisStatePersistence``: the public, asyncio-native state store."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, TypeVar, overload

from recostate import _scripts as scripts
from recostate import _telemetry as telemetry
from recostate._cluster_tags import ClusterTagIndex
from recostate._codec import Codec, EncodedFrame, FrameHeader, ParsedFrame, now_ms
from recostate._config import MiB, StoreConfig
from recostate._errors import (
    ConfigurationError,
    IntegrityError,
    ReplicationError,
    StoreClosedError,
    StoreRefusedError,
    VersionConflictError,
    VersionNotFoundError,
)
from recostate._keys import KeySpace, StateKeys
from recostate._redis import (
    AnyRedis,
    Executor,
    RetryPolicy,
    check_client,
    check_redis_options,
    check_redis_url,
    is_cluster_client,
    open_client,
)
from recostate._stats import StoreCounters
from recostate._types import DEFAULT, CompressionType, Default, StateMetadata
from recostate._validation import (
    check_keep_last,
    check_state_id,
    check_tag,
    check_tags,
    check_version,
    resolve_ttl,
)

__all__ = ["RedisStatePersistence"]

logger = logging.getLogger("recostate.persistence")

T = TypeVar("T")

# Ids per SSCAN / verification page when listing by tag.
_TAG_PAGE = 500


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _int(value: Any) -> int:
    return int(value)


class RedisStatePersistence:
    """A versioned, compressed, checksummed state store on Redis, for asyncio.

    Each state, named by a ``state_id``, is saved as a new version with its
    metadata in one atomic round trip (a server-side script), and can be loaded
    at any kept version, listed, rolled back, pruned and found by tag.

    Example::

        async with RedisStatePersistence("redis://localhost:6379/0") as store:
            meta = await store.save("agent-7", {"step": 1})
            state = await store.load("agent-7")

    Args:
        redis_url: ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL of the
            server (of any one node with ``cluster=True``). Ignored with ``client=``.
        compression_type: codec of new versions (``LZ4``, ``ZLIB`` or ``NONE``).
        enable_versioning: keep past versions; when off only the head is kept
            but version numbers still increase.
        max_versions: versions kept per state (>= 1), trimmed in the same write.
        default_ttl: seconds every key of a state lives after a save, or ``None``.
        redis_options: options for redis-py (``max_connections``,
            ``socket_timeout``, ``socket_connect_timeout``, ``pool_timeout``,
            TLS options, ``retry_on_timeout``...). ``decode_responses`` is refused.
        key_prefix: the start of every key recostate reads or writes.
        client: an existing ``redis.asyncio.Redis`` or ``RedisCluster``; never
            closed by recostate.
        cluster: talk to a Redis Cluster through ``redis.asyncio.cluster``.
        compression_threshold: encoded states smaller than this many bytes are
            stored uncompressed.
        offload_threshold: from this many bytes on, compression, checksums and
            decoding run in a worker thread so the event loop keeps running.
        max_payload_bytes: the largest encoded state accepted (64 MiB by default).
        retries: how many times a call is resent after a connection failure.
        retry_backoff: the first wait between retries in seconds; it doubles.
        signing_key: sign every stored frame with HMAC-SHA256 and accept only
            frames signed by a key held here: ``b"key"`` (at least 16 bytes),
            a list of keys newest first (the first signs, all verify) whose
            items are bytes or ``(key_id, key)`` pairs, or a mapping
            ``{key_id: key}``. See ``docs/reliability.md``.
        wait_for_replicas: after each write, wait (Redis ``WAIT``) until this
            many replicas acknowledged it; 0 (the default) does not wait. Fewer
            acknowledgements within ``wait_timeout`` raise ``ReplicationError``
            (the write was applied on the primary). Not with ``cluster=True``.
        wait_timeout: seconds a write waits for its replicas; keep it under
            ``socket_timeout``.

    Raises:
        ConfigurationError: at once, for any invalid option. No I/O happens here.
    """

    def __init__(
        self,
        redis_url: str = "redis://localhost:6379/0",
        *,
        compression_type: CompressionType | str = CompressionType.LZ4,
        enable_versioning: bool = True,
        max_versions: int = 10,
        default_ttl: int | None = None,
        redis_options: dict[str, Any] | None = None,
        key_prefix: str = "recostate",
        client: AnyRedis | None = None,
        cluster: bool = False,
        compression_threshold: int = 1024,
        offload_threshold: int = 256 * 1024,
        max_payload_bytes: int = 64 * MiB,
        retries: int = 3,
        retry_backoff: float = 0.05,
        signing_key: bytes | Sequence[bytes | tuple[str, bytes]] | Mapping[str, bytes] | None = None,
        wait_for_replicas: int = 0,
        wait_timeout: float = 1.0,
    ) -> None:
        self._config = StoreConfig.build(
            compression_type=compression_type,
            enable_versioning=enable_versioning,
            max_versions=max_versions,
            default_ttl=default_ttl,
            key_prefix=key_prefix,
            compression_threshold=compression_threshold,
            offload_threshold=offload_threshold,
            max_payload_bytes=max_payload_bytes,
            retries=retries,
            retry_backoff=retry_backoff,
            signing_key=signing_key,
            wait_for_replicas=wait_for_replicas,
            wait_timeout=wait_timeout,
        )
        if not isinstance(cluster, bool):
            raise ConfigurationError("cluster must be a bool")
        retry = RetryPolicy(retries=self._config.retries, backoff_base=self._config.retry_backoff)
        if client is not None:
            if redis_options:
                raise ConfigurationError("pass redis_options or client, not both")
            given = check_client(client)
            self._cluster = is_cluster_client(given)
            self._executor = Executor(lambda: given, owns_client=False, retry=retry)
        else:
            url = check_redis_url(redis_url, cluster=cluster)
            options = check_redis_options(redis_options, cluster=cluster)
            self._cluster = cluster
            # Built now (no I/O happens before the first call) so options that
            # do not fit the URL raise ConfigurationError here.
            built = open_client(url, options, cluster=cluster)
            self._executor = Executor(
                lambda: built, owns_client=True, retry=retry, pool_timeout=options["pool_timeout"]
            )
        self._keys = KeySpace(self._config.key_prefix)
        self._codec = Codec(
            compression=self._config.compression_type,
            compression_threshold=self._config.compression_threshold,
            offload_threshold=self._config.offload_threshold,
            max_payload_bytes=self._config.max_payload_bytes,
            signing=self._config.signing,
        )
        self._counters = StoreCounters()
        # Tag sets live in other hash slots than the state: on a cluster they
        # are kept by separate commands, on one server inside the write script.
        self._tag_base = b"" if self._cluster else self._keys.tag_base
        self._cluster_tags = ClusterTagIndex(self._executor, self._keys) if self._cluster else None

    # -- lifecycle --------------------------------------------------------------------

    @property
    def config(self) -> StoreConfig:
        """The validated settings of this store."""
        return self._config

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has been called."""
        return self._executor.closed

    async def connect(self) -> None:
        """Connect now and check the server answers (otherwise the first call connects)."""
        await self._executor.ping()

    async def __aenter__(self) -> RedisStatePersistence:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the connection pool. Every later call raises ``StoreClosedError``."""
        await self._executor.aclose()

    # -- helpers ----------------------------------------------------------------------

    def _state(self, state_id: object) -> StateKeys:
        return self._keys.state(check_state_id(state_id))

    def _args(self, keys: StateKeys, *extra: bytes | str | int) -> list[bytes | str | int]:
        return [
            keys.version_base,
            keys.version_suffix,
            self._tag_base,
            keys.version_suffix[1:],
            *extra,
        ]

    async def _run(self, script: scripts.Script, keys: StateKeys, *extra: bytes | str | int) -> Any:
        return await self._executor.run(script, keys.fixed, self._args(keys, *extra))

    async def _run_write(
        self, script: scripts.Script, keys: StateKeys, *extra: bytes | str | int
    ) -> Any:
        """Run a writing script, then ``WAIT`` for replicas when ``wait_for_replicas`` asks."""
        wanted = self._config.wait_for_replicas
        if not wanted:
            return await self._run(script, keys, *extra)
        reply, acked = await self._executor.run_and_wait(
            script,
            keys.fixed,
            self._args(keys, *extra),
            replicas=wanted,
            timeout_ms=max(1, round(self._config.wait_timeout * 1000)),
        )
        if acked < wanted:
            if script is scripts.SAVE:
                if reply[0] == b"conflict":
                    return reply  # nothing was written: the caller reports the conflict
                raise ReplicationError(keys.state_id, wanted, acked, version=_int(reply[1]))
            raise ReplicationError(keys.state_id, wanted, acked)
        return reply

    def _metadata(
        self, state_id: str, version: int, created_ms: Any, info: ParsedFrame
    ) -> StateMetadata:
        header = info.header
        created = _utc(int(created_ms)) if created_ms is not None else header.updated_at
        return StateMetadata(
            state_id=state_id,
            version=version,
            created_at=created,
            updated_at=header.updated_at,
            size_bytes=header.size_bytes,
            stored_bytes=info.stored_bytes,
            compression_type=info.compression,
            checksum=info.checksum,
            tags=header.tags,
            ttl=header.ttl or None,
            rolled_back_from=header.rolled_back_from or None,
        )

    def _ensure_open(self) -> None:
        if self._executor.closed:
            raise StoreClosedError("this store has been closed")

    # -- writes -----------------------------------------------------------------------

    @telemetry.traced("save", id_position=1)
    async def save_with_metadata(
        self,
        state: Any,
        state_id: str,
        version: int | None = None,
        tags: Iterable[str] | None = None,
        ttl: int | Default | None = DEFAULT,
        expected_version: int | None = None,
    ) -> StateMetadata:
        """Save ``state`` as a new version of ``state_id`` and return its metadata.

        Args:
            state: anything msgspec encodes (dicts, lists, scalars, bytes,
                datetimes, UUIDs, ``msgspec.Struct``, dataclasses).
            state_id: the state's id: any non-empty ``str`` of up to 1024 characters.
            version: an explicit version number, greater than every one given so
                far; ``None`` takes the next one (1 for a new state).
            tags: strings stored with this version, findable with ``list_states(tag=)``.
            ttl: seconds before every key of the state expires; ``None`` for
                never; left out, the store's ``default_ttl``.
            expected_version: compare-and-set: write only if the head is this
                version (``0``: only if the state does not exist).

        Raises:
            InvalidInputError: a bad argument, before any I/O.
            SerializationError: ``state`` cannot be encoded; nothing written.
            PayloadTooLargeError: the encoded state is over ``max_payload_bytes``.
            VersionConflictError: the compare-and-set or explicit version did not
                hold; nothing written.
            StoreUnavailableError: the server could not be reached after retries;
                the save may or may not have been applied.
        """
        self._ensure_open()
        keys = self._state(state_id)
        wanted = None if version is None else check_version(version)
        expected = (
            None
            if expected_version is None
            else check_version(expected_version, "expected_version")
        )
        tag_tuple = check_tags(tags)
        ttl_s = resolve_ttl(ttl, self._config.default_ttl)
        started = time.perf_counter()
        frame = await self._codec.encode(
            state,
            lambda size: FrameHeader(now_ms(), size, ttl_s or 0, 0, tag_tuple),
            keys.state_id,
        )
        meta = await self._write(keys, frame, version=wanted, expected=expected, ttl=ttl_s)
        logger.debug(
            "save id=%r version=%d size=%d stored=%d codec=%s in %.2f ms",
            keys.state_id,
            meta.version,
            meta.size_bytes,
            meta.stored_bytes,
            meta.compression_type.value,
            (time.perf_counter() - started) * 1000,
        )
        telemetry.record_write(meta)
        return meta

    async def _write(
        self,
        keys: StateKeys,
        frame: EncodedFrame,
        *,
        version: int | None,
        expected: int | None,
        ttl: int | None,
    ) -> StateMetadata:
        if self._cluster_tags is not None:
            # Before and after the write: see recostate._cluster_tags.
            await self._cluster_tags.add(keys, frame.info.header.tags)
        reply = await self._run_write(
            scripts.SAVE,
            keys,
            # 64 random bits: unique among the 32 ids a state remembers (a clash
            # has odds of 2**-59 per save), and a quarter of a hex UUID's bytes
            # in every state's memory.
            os.urandom(8),
            "" if expected is None else expected,
            "" if version is None else version,
            self._config.versions_kept,
            "" if ttl is None else ttl * 1000,
            frame.info.header.updated_at_ms,
            frame.data,
            *scripts.save_fields(
                updated_at_ms=frame.info.header.updated_at_ms,
                size_bytes=frame.info.header.size_bytes,
                codec=frame.info.compression.value,
                checksum=frame.info.checksum,
                ttl=frame.info.header.ttl,
                rolled_back_from=frame.info.header.rolled_back_from,
                tags=frame.info.header.tags,
            ),
        )
        status = reply[0]
        if status == b"conflict":
            self._counters.conflicts += 1
            telemetry.record_conflict()
            actual = _int(reply[1])
            asked = expected if expected is not None and expected != actual else version
            raise VersionConflictError(
                keys.state_id, asked if asked is not None else actual, actual
            )
        if status == b"dup":
            logger.debug("save id=%r was applied before its reply was lost", keys.state_id)
        if self._cluster_tags is not None:
            await self._cluster_tags.add(keys, frame.info.header.tags)
        self._counters.record_save(frame.info.header.size_bytes, frame.info.stored_bytes)
        return self._metadata(keys.state_id, _int(reply[1]), reply[2], frame.info)

    async def save(
        self,
        state_id: str,
        state: Any,
        *,
        version: int | None = None,
        tags: Iterable[str] | None = None,
        ttl: int | Default | None = DEFAULT,
        expected_version: int | None = None,
    ) -> StateMetadata:
        """Save ``state`` under ``state_id``: :meth:`save_with_metadata` with the id first."""
        return await self.save_with_metadata(
            state, state_id, version=version, tags=tags, ttl=ttl, expected_version=expected_version
        )

    @telemetry.traced("rollback")
    async def rollback(self, state_id: str, version: int) -> StateMetadata:
        """Write a new head whose state equals ``version``'s; history is kept.

        The new version's ``rolled_back_from`` is ``version``, its tags are those
        of ``version``, and its TTL the store's ``default_ttl``.

        Raises:
            VersionNotFoundError: ``version`` is not stored.
            IntegrityError: the stored ``version`` is corrupted.
        """
        self._ensure_open()
        keys = self._state(state_id)
        source = check_version(version)
        reply = await self._run(scripts.LOAD, keys, source)
        if reply is None:
            raise VersionNotFoundError(keys.state_id, source)
        ttl = self._config.default_ttl

        def header_of(old: FrameHeader) -> FrameHeader:
            return FrameHeader(now_ms(), old.size_bytes, ttl or 0, source, old.tags)

        with self._counting_integrity(keys.state_id):
            frame = await self._codec.reframe(reply[2], header_of, keys.state_id, source)
        meta = await self._write(keys, frame, version=None, expected=None, ttl=ttl)
        logger.debug("rollback id=%r from=%d to version=%d", keys.state_id, source, meta.version)
        telemetry.record_write(meta)
        return meta

    @telemetry.traced("delete_version")
    async def delete_version(self, state_id: str, version: int) -> bool:
        """Delete one version; ``True`` if it existed.

        Deleting the head makes the newest remaining version the head; deleting
        the last version deletes the state.
        """
        self._ensure_open()
        keys = self._state(state_id)
        number = check_version(version)
        if self._cluster_tags is None:
            return bool(await self._run_write(scripts.DELETE_VERSION, keys, number))
        tags = await self._cluster_tags.head_tags(keys)
        found = bool(await self._run_write(scripts.DELETE_VERSION, keys, number))
        await self._cluster_tags.forget(keys, tags)
        return found

    @telemetry.traced("delete")
    async def delete(self, state_id: str) -> bool:
        """Delete every key of the state and its tag memberships; ``True`` if it existed."""
        self._ensure_open()
        keys = self._state(state_id)
        if self._cluster_tags is None:
            return bool(await self._run_write(scripts.DELETE, keys))
        tags = await self._cluster_tags.head_tags(keys)
        found = bool(await self._run_write(scripts.DELETE, keys))
        await self._cluster_tags.forget(keys, tags)
        return found

    @telemetry.traced("touch")
    async def touch(self, state_id: str, ttl: int | Default | None = DEFAULT) -> bool:
        """Apply ``ttl`` (default: ``default_ttl``; ``None``: no expiry) to every key of the state.

        Returns ``True`` if the state exists.
        """
        self._ensure_open()
        keys = self._state(state_id)
        ttl_s = resolve_ttl(ttl, self._config.default_ttl)
        return bool(
            await self._run_write(scripts.TOUCH, keys, "" if ttl_s is None else ttl_s * 1000)
        )

    @telemetry.traced("prune")
    async def prune(self, state_id: str, keep_last: int) -> int:
        """Delete all but the newest ``keep_last`` versions; return how many were removed.

        ``keep_last=0`` removes every version, and so the state.
        """
        self._ensure_open()
        keys = self._state(state_id)
        keep = check_keep_last(keep_last)
        if self._cluster_tags is None:
            return _int(await self._run_write(scripts.PRUNE, keys, keep))
        tags = await self._cluster_tags.head_tags(keys)
        removed = _int(await self._run_write(scripts.PRUNE, keys, keep))
        await self._cluster_tags.forget(keys, tags)
        return removed

    # -- reads ------------------------------------------------------------------------

    @contextmanager
    def _counting_integrity(self, state_id: str) -> Iterator[None]:
        try:
            yield
        except IntegrityError as exc:
            self._counters.integrity_failures += 1
            telemetry.record_integrity_failure()
            logger.warning("integrity failure on state id=%r: %s", state_id, exc.reason)
            raise

    @overload
    async def load_with_metadata(
        self, state_id: str, version: int | None = None, *, type: None = None
    ) -> tuple[Any, StateMetadata] | None: ...

    @overload
    async def load_with_metadata(
        self, state_id: str, version: int | None = None, *, type: type[T]
    ) -> tuple[T, StateMetadata] | None: ...

    @telemetry.traced("load")
    async def load_with_metadata(
        self, state_id: str, version: int | None = None, *, type: Any = None
    ) -> tuple[Any, StateMetadata] | None:
        """Return the head (or ``version``) and its metadata, or ``None`` if not stored.

        Args:
            state_id: the state's id.
            version: a version number; ``None`` for the head.
            type: decode into this type (a ``msgspec.Struct``, a dataclass,
                ``list[int]``...); otherwise into builtins.

        Raises:
            IntegrityError: the stored bytes fail their checksum or do not decode.
            SerializationError: the stored state is sound but does not match ``type``.
        """
        self._ensure_open()
        keys = self._state(state_id)
        wanted = None if version is None else check_version(version)
        started = time.perf_counter()
        reply = await self._run(scripts.LOAD, keys, "" if wanted is None else wanted)
        if reply is None:
            return None
        number = _int(reply[0])
        frame: bytes = reply[2]
        with self._counting_integrity(keys.state_id):
            state, info = await self._codec.decode(frame, keys.state_id, number, type)
        self._counters.loads += 1
        logger.debug(
            "load id=%r version=%d stored=%d in %.2f ms",
            keys.state_id,
            number,
            len(frame),
            (time.perf_counter() - started) * 1000,
        )
        telemetry.record_read(number, len(frame))
        return state, self._metadata(keys.state_id, number, reply[1], info)

    @overload
    async def load(
        self, state_id: str, version: int | None = None, *, type: None = None
    ) -> Any: ...

    @overload
    async def load(
        self, state_id: str, version: int | None = None, *, type: type[T]
    ) -> T | None: ...

    async def load(self, state_id: str, version: int | None = None, *, type: Any = None) -> Any:
        """Return the head (or ``version``) of ``state_id``, or ``None`` if not stored."""
        found = await self.load_with_metadata(state_id, version, type=type)
        return None if found is None else found[0]

    @telemetry.traced("get_metadata")
    async def get_metadata(self, state_id: str, version: int | None = None) -> StateMetadata | None:
        """Return the metadata of the head (or ``version``) without reading the payload."""
        self._ensure_open()
        keys = self._state(state_id)
        wanted = None if version is None else check_version(version)
        reply = await self._run(scripts.METADATA, keys, "" if wanted is None else wanted)
        if reply is None:
            return None
        number = _int(reply[0])
        with self._counting_integrity(keys.state_id):
            info = self._codec.parse_header(reply[2], keys.state_id, number, _int(reply[3]))
        return self._metadata(keys.state_id, number, reply[1], info)

    @telemetry.traced("list_versions")
    async def list_versions(self, state_id: str) -> list[StateMetadata]:
        """Return the metadata of every stored version, oldest first (``[]`` if unknown)."""
        self._ensure_open()
        keys = self._state(state_id)
        reply: Sequence[Any] = await self._run(scripts.LIST_VERSIONS, keys)
        if not reply:
            return []
        created, entries = reply[0], reply[1:]
        out = []
        for number, header, size in entries:
            with self._counting_integrity(keys.state_id):
                info = self._codec.parse_header(header, keys.state_id, _int(number), _int(size))
            out.append(self._metadata(keys.state_id, _int(number), created, info))
        return out

    @telemetry.traced("exists")
    async def exists(self, state_id: str) -> bool:
        """Return whether the state exists (has at least one stored version)."""
        self._ensure_open()
        keys = self._state(state_id)
        return bool(await self._executor.command("EXISTS", keys.state))

    def iter_states(self, *, tag: str | None = None) -> AsyncIterator[str]:
        """Iterate over the ids of existing states, or of those whose head carries ``tag``.

        Uses SCAN (never KEYS) or the tag's index, each member checked against
        its state's head, so an expired, deleted or re-tagged state is never
        yielded. Each id is yielded once; no order is promised.
        """
        self._ensure_open()
        wanted = None if tag is None else check_tag(tag)
        if wanted is None:
            return self._iter_all()
        if self._cluster_tags is not None:
            return self._cluster_tags.members(wanted)
        return self._iter_tag(wanted)

    async def _iter_all(self) -> AsyncIterator[str]:
        seen: set[bytes] = set()
        async for key in self._executor.scan(self._keys.state_pattern(), type_="hash"):
            if key not in seen:
                seen.add(key)
                yield self._keys.id_from_state_key(key)

    async def _iter_tag(self, tag: str) -> AsyncIterator[str]:
        seen: set[bytes] = set()
        tag_key = self._keys.tag(tag)
        cursor: bytes | int = 0
        head, middle = self._keys.state_key_parts()
        while True:
            cursor, members = await self._executor.run(
                scripts.TAG_MEMBERS, [tag_key], [head, middle, tag, cursor, _TAG_PAGE]
            )
            for member in members:
                if member not in seen:
                    seen.add(member)
                    yield member.decode("utf-8", "surrogatepass")
            if int(cursor) == 0:
                return

    async def list_states(self, *, tag: str | None = None) -> list[str]:
        """Return the ids of existing states (whose head carries ``tag``, if given)."""
        return [state_id async for state_id in self.iter_states(tag=tag)]

    async def get_stats(self) -> dict[str, Any]:
        """Return server figures, this store's counters and the pool's use.

        ``redis_info`` holds ``used_memory`` (bytes), ``redis_version``,
        ``connected_clients`` and more; ``store`` the counters since this store
        was created (``saves``, ``loads``, ``conflicts``, ``integrity_failures``,
        ``bytes_raw``, ``bytes_stored``, ``compression_ratio``); ``pool`` the
        connection pool's size and use.
        """
        self._ensure_open()
        try:
            redis_info = _summarise_info(await self._executor.info(), cluster=self._cluster)
        except StoreRefusedError:
            if self._cluster:
                raise
            redis_info = await self._restricted_info()
        return {
            "redis_info": redis_info,
            "store": self._counters.snapshot(),
            "pool": self._executor.pool(),
        }

    async def _restricted_info(self) -> dict[str, Any]:
        """Server figures for an ACL user without ``INFO`` (it is in ``@dangerous``).

        ``MEMORY STATS`` and ``HELLO`` (no protocol change) are allowed to such a
        user and give the memory use and the version; client counts are not
        available, and ``info_restricted`` says so.
        """
        stats = _pairs(await self._executor.command("MEMORY", "STATS"))
        server = _pairs(await self._executor.command("HELLO"))

        def text(value: Any) -> str:
            return value.decode() if isinstance(value, bytes) else str(value)

        return {
            "redis_version": text(server.get(b"version", b"")),
            "redis_mode": text(server.get(b"mode", b"")),
            "role": text(server.get(b"role", b"")),
            "used_memory": int(stats.get(b"total.allocated", 0)),
            "used_memory_peak": int(stats.get(b"peak.allocated", 0)),
            "info_restricted": True,
        }


_INFO_FIELDS = (
    "redis_version",
    "redis_mode",
    "role",
    "uptime_in_seconds",
    "used_memory",
    "used_memory_peak",
    "maxmemory",
    "maxmemory_policy",
    "connected_clients",
    "blocked_clients",
    "total_commands_processed",
    "keyspace_hits",
    "keyspace_misses",
    "evicted_keys",
    "expired_keys",
)


def _pairs(reply: Any) -> dict[Any, Any]:
    # A flat [name, value, ...] array in RESP2, already a map in RESP3.
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=False))


def _pick(info: dict[str, Any]) -> dict[str, Any]:
    return {name: info[name] for name in _INFO_FIELDS if name in info}


def _summarise_info(info: dict[str, Any], *, cluster: bool) -> dict[str, Any]:
    if not cluster or "redis_version" in info:
        return _pick(info)
    # RedisCluster.info() answers {node name: INFO of that node}.
    nodes = {str(name): _pick(node) for name, node in info.items() if isinstance(node, dict)}
    first = next(iter(nodes.values()), {})

    def total(name: str) -> int:
        return sum(int(node.get(name, 0)) for node in nodes.values())

    return {
        "redis_version": first.get("redis_version"),
        "redis_mode": first.get("redis_mode", "cluster"),
        "primaries": len(nodes),
        "used_memory": total("used_memory"),
        "connected_clients": total("connected_clients"),
        "total_commands_processed": total("total_commands_processed"),
        "keyspace_hits": total("keyspace_hits"),
        "keyspace_misses": total("keyspace_misses"),
        "evicted_keys": total("evicted_keys"),
        "expired_keys": total("expired_keys"),
        "nodes": nodes,
    }
