"""``RedisStatePersistence``: the public, asyncio-native state store.

The store checks arguments, encodes and decodes through the codec
(``recostate._codec``), keeps its counters and telemetry, and leaves every
key, script and reply to the storage layer (``recostate._storage``).

This module is longer than the others on purpose: it is the one public class
whose methods are the documented API, each with the docstring users read in
their editor; every method is a thin step (check the arguments, call the
codec and the storage layer, count), and what is heavier lives in the layers
below. Splitting the class across modules would scatter the API, not shorten
any of its steps.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, TypeVar, overload

import msgspec

from recostate import _telemetry as telemetry
from recostate._codec import Codec, EncodedVersion, KnownPieces, VersionHeader, VersionInfo, now_ms
from recostate._config import DEFAULT_CHUNK_THRESHOLD, MiB, StoreConfig
from recostate._errors import (
    ConfigurationError,
    IntegrityError,
    RecostateError,
    ReplicationError,
    StoreClosedError,
    StoreRefusedError,
    VersionConflictError,
    VersionNotFoundError,
)
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
from recostate._stats import StoreCounters, pairs, summarise_info
from recostate._storage import (
    Conflict,
    DictionaryMismatch,
    KeySpace,
    PiecesMissing,
    Saved,
    StateKeys,
    StateStorage,
    Written,
)
from recostate._storage.scripts import WRITE_ID_SIZE
from recostate._types import DEFAULT, CompressionType, Default, StateMetadata
from recostate._validation import (
    check_idempotency_key,
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

# A save whose pieces the server lacked, or whose dictionary was not the
# state's, is sent again with what it learned; twice is always enough.
_SAVE_ATTEMPTS = 3
# A save by a client that knows nothing of a state's pieces first asks which
# the server holds, when the state is cut into at least this many.
_ASK_FROM_PIECES = 16


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _write_id(idempotency_key: str | None) -> bytes:
    if idempotency_key is None:
        # Random: unique among the writes a state remembers (a clash has odds
        # of about 2**-90 per save).
        return os.urandom(WRITE_ID_SIZE)
    digest = hashlib.sha256(b"recostate idempotency key\x00")
    digest.update(idempotency_key.encode("utf-8", "surrogatepass"))
    return digest.digest()[:WRITE_ID_SIZE]


class RedisStatePersistence:
    """A versioned, compressed, checksummed state store on Redis, for asyncio.

    Each state, named by a ``state_id``, is saved as a new version with its
    metadata in one atomic round trip (a server-side script), and can be loaded
    at any kept version, listed, rolled back, pruned and found by tag. Large
    states are stored as content-defined chunks that their versions share.

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
        offload_threshold: from this many bytes on, cutting, compression,
            checksums and decoding run in a worker thread so the event loop
            keeps running.
        max_payload_bytes: the largest encoded state accepted (64 MiB by default).
        retries: how many times a call is resent after a connection failure.
        retry_backoff: the first wait between retries in seconds; it doubles.
        signing_key: sign every stored version with HMAC-SHA256 and accept only
            versions signed by a key held here: ``b"key"`` (at least 16 bytes),
            a list of keys newest first (the first signs, all verify) whose
            items are bytes or ``(key_id, key)`` pairs, or a mapping
            ``{key_id: key}``. See ``docs/reliability.md``.
        wait_for_replicas: after each write, wait (Redis ``WAIT``) until this
            many replicas acknowledged it; 0 (the default) does not wait. Fewer
            acknowledgements within ``wait_timeout`` raise ``ReplicationError``
            (the write was applied on the primary). Not with ``cluster=True``.
        wait_timeout: seconds a write waits for its replicas; keep it under
            ``socket_timeout``.
        chunk_threshold: encoded states of at least this many bytes (4 KiB by
            default) are stored as content-defined chunks that the versions of
            a state share, so a growing state's history costs little more than
            its newest version and a save sends only what changed; ``None``
            stores every version whole. See ``docs/architecture.md``.

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
        chunk_threshold: int | None = DEFAULT_CHUNK_THRESHOLD,
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
            chunk_threshold=chunk_threshold,
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
        self._storage = StateStorage(
            self._executor,
            KeySpace(self._config.key_prefix),
            cluster=self._cluster,
            wait_for_replicas=self._config.wait_for_replicas,
            wait_timeout_ms=max(1, round(self._config.wait_timeout * 1000)),
        )
        self._codec = Codec(
            compression=self._config.compression_type,
            compression_threshold=self._config.compression_threshold,
            offload_threshold=self._config.offload_threshold,
            max_payload_bytes=self._config.max_payload_bytes,
            signing=self._config.signing,
            chunk_threshold=self._config.chunk_threshold,
        )
        self._counters = StoreCounters()

    # -- lifecycle --------------------------------------------------------------------

    @property
    def config(self) -> StoreConfig:
        """The validated settings of this store."""
        return self._config

    @property
    def storage(self) -> StateStorage:
        """The storage layer below this store (keys, scripts, replies), for integrations.

        The command line and ``recostate.contrib`` build on it; applications
        should not need it.
        """
        return self._storage

    @property
    def codec(self) -> Codec:
        """The codec of this store's settings (frames, chunks, compression), for integrations."""
        return self._codec

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

    def _ensure_open(self) -> None:
        if self._executor.closed:
            raise StoreClosedError("this store has been closed")

    def _keys(self, state_id: object) -> StateKeys:
        self._ensure_open()
        return self._storage.keys(check_state_id(state_id))

    def _metadata(
        self, state_id: str, version: int, created_ms: int | None, info: VersionInfo
    ) -> StateMetadata:
        header = info.header
        return StateMetadata(
            state_id=state_id,
            version=version,
            created_at=_utc(created_ms) if created_ms is not None else header.updated_at,
            updated_at=header.updated_at,
            size_bytes=header.size_bytes,
            stored_bytes=info.stored_bytes,
            compression_type=info.compression,
            checksum=info.checksum,
            tags=header.tags,
            ttl=header.ttl or None,
            rolled_back_from=header.rolled_back_from or None,
        )

    def _replicated(self, state_id: str, replicas: int | None, version: int | None = None) -> None:
        wanted = self._config.wait_for_replicas
        if replicas is not None and replicas < wanted:
            raise ReplicationError(state_id, wanted, replicas, version=version)

    def _integrity_failed(self, state_id: str, exc: IntegrityError) -> None:
        self._counters.integrity_failures += 1
        telemetry.record_integrity_failure()
        logger.warning("integrity failure on state id=%r: %s", state_id, exc.reason)

    @contextmanager
    def _counting_integrity(self, state_id: str) -> Iterator[None]:
        try:
            yield
        except IntegrityError as exc:
            self._integrity_failed(state_id, exc)
            raise

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
        idempotency_key: str | None = None,
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
            idempotency_key: your own id for this write (a non-empty ``str`` of
                at most 256 characters): a save whose key the state has already
                applied, among its 32 most recent writes, writes nothing and
                returns the first save's metadata. Without one, each call gets
                an id of its own, so recostate's own retries never write twice.

        Raises:
            InvalidInputError: a bad argument, before any I/O.
            SerializationError: ``state`` cannot be encoded; nothing written.
            PayloadTooLargeError: the encoded state is over ``max_payload_bytes``.
            VersionConflictError: the compare-and-set or explicit version did not
                hold; nothing written.
            StoreUnavailableError: the server could not be reached after retries;
                the save may or may not have been applied.
        """
        return await self._save(
            state, state_id, version, tags, ttl, expected_version, idempotency_key
        )

    async def _save(
        self,
        state: Any,
        state_id: str,
        version: int | None,
        tags: Iterable[str] | None,
        ttl: int | Default | None,
        expected_version: int | None,
        idempotency_key: str | None,
    ) -> StateMetadata:
        keys = self._keys(state_id)
        wanted = None if version is None else check_version(version)
        expected = (
            None
            if expected_version is None
            else check_version(expected_version, "expected_version")
        )
        tag_tuple = () if tags is None else check_tags(tags)
        ttl_s = self._config.default_ttl if ttl is DEFAULT else resolve_ttl(ttl, None)
        write_id = _write_id(
            None if idempotency_key is None else check_idempotency_key(idempotency_key)
        )
        # The clock is read for the debug line only when it will be written.
        started = time.perf_counter() if logger.isEnabledFor(logging.DEBUG) else 0.0
        codec = self._codec
        raw = codec.encode_state(state)
        header = VersionHeader(now_ms(), len(raw), ttl_s or 0, 0, tag_tuple)
        ttl_ms = None if ttl_s is None else ttl_s * 1000
        if not codec.chunks(raw) and len(raw) < codec.offload_threshold:
            # A small whole version: encoded once, on the loop, whatever the
            # server holds (nothing to learn and resend).
            encoded = codec.encode_now(raw, header, keys.state_id)
            meta = await self._write_once(keys, encoded, write_id, wanted, expected, ttl_ms)
        else:

            asked = False

            async def encode(known: KnownPieces | None) -> EncodedVersion:
                nonlocal asked
                if known is not None or asked or not codec.chunks(raw):
                    return await codec.encode(raw, header, keys.state_id, known)
                # This client knows nothing of the state's pieces: asking which
                # it holds costs a round trip of ids; compressing and sending
                # them all (then learning its dictionary) costs far more.
                asked = True
                cut = await codec.cut(raw)
                if len(cut.chunks) + len(cut.nodes) >= _ASK_FROM_PIECES:
                    known = await self._held(keys, cut.refs)
                return await codec.encode(raw, header, keys.state_id, known, cut)

            meta = await self._write(
                keys, encode, write_id=write_id, version=wanted, expected=expected, ttl_ms=ttl_ms
            )
        if started:
            logger.debug(
                "save id=%r version=%d size=%d stored=%d codec=%s in %.2f ms",
                keys.state_id,
                meta.version,
                meta.size_bytes,
                meta.stored_bytes,
                meta.compression_type.value,
                (time.perf_counter() - started) * 1000,
            )
        return meta

    async def _held(self, keys: StateKeys, ids: list[bytes]) -> KnownPieces | None:
        """Return what the server holds of these pieces of the state, and its dictionary."""
        held = await self._storage.held(keys, ids)
        contents = b""
        if held.dictionary is not None:
            with self._counting_integrity(keys.state_id):
                contents = self._codec.dictionary_contents(held.dictionary, keys.state_id, None)
            if self._codec.dictionary_id(contents) != held.dictionary_id:
                contents = b""  # not what it claims: the save learns the real one if it matters
        if not held.sizes and not contents:
            return None
        return KnownPieces(held.sizes, held.dictionary_id if contents else b"", contents)

    async def _write_once(
        self,
        keys: StateKeys,
        encoded: EncodedVersion,
        write_id: bytes,
        version: int | None,
        expected: int | None,
        ttl_ms: int | None,
    ) -> StateMetadata:
        """Send a whole version (no pieces: the server can lack nothing it needs)."""
        try:
            saved = await self._storage.save(
                keys,
                encoded,
                write_id=write_id,
                expected=expected,
                explicit=version,
                keep=self._config.versions_kept,
                ttl_ms=ttl_ms,
            )
        except Conflict as exc:
            raise self._conflict(keys, exc, expected, version) from None
        return self._saved(keys, saved, encoded)

    def _conflict(
        self, keys: StateKeys, exc: Conflict, expected: int | None, version: int | None
    ) -> VersionConflictError:
        self._counters.conflicts += 1
        telemetry.record_conflict()
        asked = expected if expected is not None and expected != exc.head else version
        return VersionConflictError(keys.state_id, asked if asked is not None else exc.head, exc.head)

    async def _write(
        self,
        keys: StateKeys,
        encode: Callable[[KnownPieces | None], Awaitable[EncodedVersion]],
        *,
        write_id: bytes,
        version: int | None,
        expected: int | None,
        ttl_ms: int | str | None,
        resendable: bool = True,
    ) -> StateMetadata:
        """Send a version; learn and resend when the server lacked pieces; count and report.

        ``resendable=False``: the caller cannot supply pieces (a rollback
        refers to the source's), so a ``PiecesMissing`` is raised to it.
        """
        storage = self._storage
        for attempt in range(_SAVE_ATTEMPTS):
            encoded = await encode(storage.pieces.get(keys.state_id))
            try:
                saved = await storage.save(
                    keys,
                    encoded,
                    write_id=write_id,
                    expected=expected,
                    explicit=version,
                    keep=self._config.versions_kept,
                    ttl_ms=ttl_ms,
                )
            except Conflict as exc:
                raise self._conflict(keys, exc, expected, version) from None
            except PiecesMissing:
                storage.pieces.forget(keys.state_id)
                if not resendable:
                    raise
                if attempt:
                    logger.debug("save id=%r: the server lacked pieces again", keys.state_id)
                continue
            except DictionaryMismatch as exc:
                with self._counting_integrity(keys.state_id):
                    contents = self._codec.dictionary_contents(exc.frame, keys.state_id, None)
                storage.pieces.remember(
                    keys.state_id, KnownPieces({}, self._codec.dictionary_id(contents), contents)
                )
                continue
            return self._saved(keys, saved, encoded)
        raise RecostateError(
            f"state {keys.state_id!r}: its pieces kept changing under this save; nothing was written"
        )

    def _saved(self, keys: StateKeys, saved: Saved, encoded: EncodedVersion) -> StateMetadata:
        info = encoded.info
        if saved.duplicate:
            logger.debug("save id=%r was applied before (write id seen)", keys.state_id)
            if saved.first_head is not None:
                with self._counting_integrity(keys.state_id):
                    info = self._codec.parse_header(saved.first_head, keys.state_id, saved.version)
        self._counters.record_save(info.header.size_bytes, encoded.sent_bytes)
        meta = self._metadata(keys.state_id, saved.version, saved.created_ms, info)
        telemetry.record_write(meta)
        # The write was applied: report too few replicas only after it is counted.
        self._replicated(keys.state_id, saved.replicas, saved.version)
        return meta

    @telemetry.traced("save")
    async def save(
        self,
        state_id: str,
        state: Any,
        *,
        version: int | None = None,
        tags: Iterable[str] | None = None,
        ttl: int | Default | None = DEFAULT,
        expected_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> StateMetadata:
        """Save ``state`` under ``state_id``: :meth:`save_with_metadata` with the id first."""
        return await self._save(
            state, state_id, version, tags, ttl, expected_version, idempotency_key
        )

    @telemetry.traced("rollback")
    async def rollback(
        self, state_id: str, version: int, *, ttl: int | Default | None = DEFAULT
    ) -> StateMetadata:
        """Write a new head whose state equals ``version``'s; history is kept.

        The new version's ``rolled_back_from`` is ``version`` and its tags are
        those of ``version``. ``ttl`` is as for :meth:`save` (left out: the
        store's ``default_ttl``). A chunked version is restored by reference:
        its chunks are not read or sent again.

        Raises:
            VersionNotFoundError: ``version`` is not stored.
            IntegrityError: the stored ``version`` is corrupted.
        """
        keys = self._keys(state_id)
        source = check_version(version)
        ttl_s = resolve_ttl(ttl, self._config.default_ttl)
        write_id = _write_id(None)

        def header_of(old: VersionHeader) -> VersionHeader:
            return msgspec.structs.replace(
                old, updated_at_ms=now_ms(), ttl=ttl_s or 0, rolled_back_from=source
            )

        previous: bytes | None = None
        for _ in range(_SAVE_ATTEMPTS):
            found = await self._storage.frame(keys, source)
            if found is None:
                break
            if found.frame == previous:
                # The same version again, and still its pieces are not there:
                # it names pieces this state never held.
                with self._counting_integrity(keys.state_id):
                    raise IntegrityError(
                        keys.state_id, source, "the version refers to pieces the state does not hold"
                    )
            previous = found.frame
            with self._counting_integrity(keys.state_id):
                encoded = await self._codec.reframe(found.frame, header_of, keys.state_id, source)

            async def same(known: KnownPieces | None, encoded: EncodedVersion = encoded) -> EncodedVersion:
                return encoded

            try:
                meta = await self._write(
                    keys,
                    same,
                    write_id=write_id,
                    version=None,
                    expected=None,
                    ttl_ms=None if ttl_s is None else ttl_s * 1000,
                    resendable=False,
                )
            except PiecesMissing:
                continue  # a concurrent prune took the source's pieces: read it again
            logger.debug("rollback id=%r from=%d to version=%d", keys.state_id, source, meta.version)
            return meta
        raise VersionNotFoundError(keys.state_id, source)

    async def _removal(self, state_id: str, written: Written) -> int:
        self._replicated(state_id, written.replicas)
        return written.result

    @telemetry.traced("delete_version")
    async def delete_version(self, state_id: str, version: int) -> bool:
        """Delete one version; ``True`` if it existed.

        Deleting the head makes the newest remaining version the head; deleting
        the last version deletes the state.
        """
        keys = self._keys(state_id)
        number = check_version(version)
        written = await self._storage.delete_version(keys, number)
        return bool(await self._removal(keys.state_id, written))

    @telemetry.traced("delete")
    async def delete(self, state_id: str) -> bool:
        """Delete every key of the state and its tag memberships; ``True`` if it existed."""
        keys = self._keys(state_id)
        return bool(await self._removal(keys.state_id, await self._storage.delete(keys)))

    @telemetry.traced("touch")
    async def touch(self, state_id: str, ttl: int | Default | None = DEFAULT) -> bool:
        """Apply ``ttl`` (default: ``default_ttl``; ``None``: no expiry) to every key of the state.

        Returns ``True`` if the state exists.
        """
        keys = self._keys(state_id)
        ttl_s = resolve_ttl(ttl, self._config.default_ttl)
        written = await self._storage.touch(keys, None if ttl_s is None else ttl_s * 1000)
        return bool(await self._removal(keys.state_id, written))

    @telemetry.traced("prune")
    async def prune(self, state_id: str, keep_last: int) -> int:
        """Delete all but the newest ``keep_last`` versions; return how many were removed.

        ``keep_last=0`` removes every version, and so the state.
        """
        keys = self._keys(state_id)
        keep = check_keep_last(keep_last)
        return await self._removal(keys.state_id, await self._storage.prune(keys, keep))

    # -- reads ------------------------------------------------------------------------

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
        found: tuple[Any, StateMetadata] | None = await self._load(state_id, version, type, True)
        return found

    async def _load(
        self, state_id: str, version: int | None, type_: Any, with_metadata: bool
    ) -> Any:
        keys = self._keys(state_id)
        wanted = None if version is None else check_version(version)
        started = time.perf_counter() if logger.isEnabledFor(logging.DEBUG) else 0.0
        storage = self._storage
        held = storage.pieces.get(keys.state_id)
        loaded = await storage.load(keys, wanted, held=held)
        if loaded is None:
            return None
        stored = loaded.stored
        try:
            state, info = await self._codec.decode(stored, keys.state_id, loaded.version, type_)
            if info.chunked and wanted is None:
                storage.pieces.remember(keys.state_id, self._codec.known(stored))
        except IntegrityError as exc:
            self._integrity_failed(keys.state_id, exc)
            raise
        self._counters.loads += 1
        if started:
            logger.debug(
                "load id=%r version=%d stored=%d in %.2f ms",
                keys.state_id,
                loaded.version,
                info.stored_bytes,
                (time.perf_counter() - started) * 1000,
            )
        telemetry.record_read(loaded.version, info.stored_bytes)
        if not with_metadata:
            return state
        return state, self._metadata(keys.state_id, loaded.version, loaded.created_ms, info)

    @overload
    async def load(
        self, state_id: str, version: int | None = None, *, type: None = None
    ) -> Any: ...

    @overload
    async def load(
        self, state_id: str, version: int | None = None, *, type: type[T]
    ) -> T | None: ...

    @telemetry.traced("load")
    async def load(self, state_id: str, version: int | None = None, *, type: Any = None) -> Any:
        """Return the head (or ``version``) of ``state_id``, or ``None`` if not stored."""
        return await self._load(state_id, version, type, False)

    @telemetry.traced("get_metadata")
    async def get_metadata(self, state_id: str, version: int | None = None) -> StateMetadata | None:
        """Return the metadata of the head (or ``version``) without reading the payload."""
        keys = self._keys(state_id)
        wanted = None if version is None else check_version(version)
        header = await self._storage.metadata(keys, wanted)
        if header is None:
            return None
        with self._counting_integrity(keys.state_id):
            info = self._codec.parse_header(header.head, keys.state_id, header.version, header.size)
        return self._metadata(keys.state_id, header.version, header.created_ms, info)

    @telemetry.traced("list_versions")
    async def list_versions(self, state_id: str) -> list[StateMetadata]:
        """Return the metadata of every stored version, oldest first (``[]`` if unknown)."""
        keys = self._keys(state_id)
        out = []
        for header in await self._storage.versions(keys):
            with self._counting_integrity(keys.state_id):
                info = self._codec.parse_header(header.head, keys.state_id, header.version, header.size)
            out.append(self._metadata(keys.state_id, header.version, header.created_ms, info))
        return out

    @telemetry.traced("exists")
    async def exists(self, state_id: str) -> bool:
        """Return whether the state exists (has at least one stored version)."""
        return await self._storage.exists(self._keys(state_id))

    def iter_states(self, *, tag: str | None = None) -> AsyncIterator[str]:
        """Iterate over the ids of existing states, or of those whose head carries ``tag``.

        Uses SCAN (never KEYS) or the tag's index, each member checked against
        its state's head, so an expired, deleted or re-tagged state is never
        yielded. No order is promised. Memory stays flat however many states
        there are: an id is remembered only while it is recent, so if the
        server resizes its keyspace during the iteration an id can, rarely, be
        yielded twice (:meth:`list_states` never returns one twice).
        """
        self._ensure_open()
        return self._storage.ids(None if tag is None else check_tag(tag))

    async def list_states(self, *, tag: str | None = None) -> list[str]:
        """Return the ids of existing states (whose head carries ``tag``, if given), each once."""
        return list(dict.fromkeys([state_id async for state_id in self.iter_states(tag=tag)]))

    async def get_stats(self) -> dict[str, Any]:
        """Return server figures, this store's counters and the pool's use.

        ``redis_info`` holds ``used_memory`` (bytes), ``redis_version``,
        ``connected_clients`` and more; ``store`` the counters since this store
        was created (``saves``, ``loads``, ``conflicts``, ``integrity_failures``,
        ``bytes_raw``, ``bytes_stored``, ``compression_ratio``); ``pool`` the
        connection pool's size and use. ``bytes_stored`` counts the bytes each
        save sent: a chunked save does not send the chunks the state holds.
        """
        self._ensure_open()
        try:
            redis_info = summarise_info(await self._executor.info(), cluster=self._cluster)
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
        stats = pairs(await self._executor.command("MEMORY", "STATS"))
        server = pairs(await self._executor.command("HELLO"))

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
