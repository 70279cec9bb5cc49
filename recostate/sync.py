"""The blocking facade: the same store, without ``await``.

:class:`RedisStatePersistence` here takes the same arguments as the async
class and offers the same operations. It does not copy the async core: it runs
it on one event loop in a helper thread (an anyio blocking portal) and waits
for each call. Use it from scripts, notebooks and threaded web frameworks::

    from recostate.sync import RedisStatePersistence

    with RedisStatePersistence("redis://localhost:6379/0") as store:
        store.save("agent-7", {"step": 1})
        state = store.load("agent-7")

It is safe to call from several threads at once; the calls share one
connection pool. Do not call it from inside a running event loop: use the
async class there.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TypeVar, overload

from anyio.from_thread import BlockingPortal, start_blocking_portal

from recostate._config import DEFAULT_CHUNK_THRESHOLD, MiB, StoreConfig
from recostate._errors import StoreClosedError
from recostate._persistence import RedisStatePersistence as AsyncRedisStatePersistence
from recostate._redis import AnyRedis
from recostate._types import DEFAULT, CompressionType, Default, StateMetadata

__all__ = ["RedisStatePersistence"]

T = TypeVar("T")


class RedisStatePersistence:
    """Blocking twin of :class:`recostate.RedisStatePersistence` (same arguments, same calls).

    Each method runs the async method of the same name on the facade's own
    event loop and returns its result or raises its error. ``close()`` (or
    leaving a ``with`` block) releases the pool and stops the loop's thread.

    Example::

        with RedisStatePersistence("redis://localhost:6379/0") as store:
            meta = store.save("agent-7", {"step": 1})
            state = store.load("agent-7")

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
        # Built here, so bad options raise ConfigurationError at once, with no I/O.
        self._store = AsyncRedisStatePersistence(
            redis_url,
            compression_type=compression_type,
            enable_versioning=enable_versioning,
            max_versions=max_versions,
            default_ttl=default_ttl,
            redis_options=redis_options,
            key_prefix=key_prefix,
            client=client,
            cluster=cluster,
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
        self._portal: BlockingPortal | None = None
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def async_store(self) -> AsyncRedisStatePersistence:
        """The async store this facade drives."""
        return self._store

    @property
    def config(self) -> StoreConfig:
        """The validated settings of this store."""
        return self._store.config

    def _get_portal(self) -> BlockingPortal:
        with self._lock:
            if self._closed:
                raise StoreClosedError("this store has been closed")
            if self._portal is None:
                self._portal_cm = start_blocking_portal()
                self._portal = self._portal_cm.__enter__()
            return self._portal

    def _call(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        portal = self._get_portal()
        return portal.call(lambda: func(*args, **kwargs))

    def run_coroutine(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``func(*args)`` on this facade's event loop and wait for its result.

        For integrations that drive :attr:`async_store` with coroutines of their
        own (``recostate.contrib.langgraph.RecostateSaver``): the store's
        connections belong to this loop.
        """
        return self._call(func, *args)

    def submit_coroutine(self, func: Callable[..., Awaitable[T]], *args: Any) -> Future[T]:
        """Start ``func(*args)`` on this facade's event loop; return a future of its result.

        Lets async code elsewhere await work on this loop
        (``asyncio.wrap_future``) without blocking its own.
        """
        return self._get_portal().start_task_soon(func, *args)

    # -- lifecycle --------------------------------------------------------------------

    def connect(self) -> None:
        """Connect now and check the server answers."""
        self._call(self._store.connect)

    def close(self) -> None:
        """Release the pool and stop the helper thread; later calls raise ``StoreClosedError``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            portal, portal_cm = self._portal, self._portal_cm
            self._portal = self._portal_cm = None
        if portal is not None and portal_cm is not None:
            try:
                portal.call(self._store.aclose)
            finally:
                portal_cm.__exit__(None, None, None)

    def __enter__(self) -> RedisStatePersistence:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    # -- operations -------------------------------------------------------------------

    def save_with_metadata(
        self,
        state: Any,
        state_id: str,
        version: int | None = None,
        tags: Iterable[str] | None = None,
        ttl: int | Default | None = DEFAULT,
        expected_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> StateMetadata:
        """Save ``state`` as a new version of ``state_id`` (see the async class)."""
        return self._call(
            self._store.save_with_metadata,
            state,
            state_id,
            version,
            tags,
            ttl,
            expected_version,
            idempotency_key,
        )

    def save(
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
        """Save ``state`` under ``state_id`` and return its metadata."""
        return self._call(
            self._store.save,
            state_id,
            state,
            version=version,
            tags=tags,
            ttl=ttl,
            expected_version=expected_version,
            idempotency_key=idempotency_key,
        )

    @overload
    def load_with_metadata(
        self, state_id: str, version: int | None = None, *, type: None = None
    ) -> tuple[Any, StateMetadata] | None: ...

    @overload
    def load_with_metadata(
        self, state_id: str, version: int | None = None, *, type: type[T]
    ) -> tuple[T, StateMetadata] | None: ...

    def load_with_metadata(
        self, state_id: str, version: int | None = None, *, type: Any = None
    ) -> tuple[Any, StateMetadata] | None:
        """Return the head (or ``version``) and its metadata, or ``None``."""
        return self._call(self._store.load_with_metadata, state_id, version, type=type)

    @overload
    def load(self, state_id: str, version: int | None = None, *, type: None = None) -> Any: ...

    @overload
    def load(self, state_id: str, version: int | None = None, *, type: type[T]) -> T | None: ...

    def load(self, state_id: str, version: int | None = None, *, type: Any = None) -> Any:
        """Return the head (or ``version``) of ``state_id``, or ``None``."""
        return self._call(self._store.load, state_id, version, type=type)

    def get_metadata(self, state_id: str, version: int | None = None) -> StateMetadata | None:
        """Return the metadata of the head (or ``version``) without reading the payload."""
        return self._call(self._store.get_metadata, state_id, version)

    def list_versions(self, state_id: str) -> list[StateMetadata]:
        """Return the metadata of every stored version, oldest first."""
        return self._call(self._store.list_versions, state_id)

    def delete_version(self, state_id: str, version: int) -> bool:
        """Delete one version; ``True`` if it existed."""
        return self._call(self._store.delete_version, state_id, version)

    def rollback(
        self, state_id: str, version: int, *, ttl: int | Default | None = DEFAULT
    ) -> StateMetadata:
        """Write a new head equal to ``version``; history is kept."""
        return self._call(self._store.rollback, state_id, version, ttl=ttl)

    def delete(self, state_id: str) -> bool:
        """Delete every key of the state; ``True`` if it existed."""
        return self._call(self._store.delete, state_id)

    def exists(self, state_id: str) -> bool:
        """Return whether the state exists."""
        return self._call(self._store.exists, state_id)

    def touch(self, state_id: str, ttl: int | Default | None = DEFAULT) -> bool:
        """Re-apply a TTL to every key of the state; ``True`` if it exists."""
        return self._call(self._store.touch, state_id, ttl)

    def prune(self, state_id: str, keep_last: int) -> int:
        """Delete all but the newest ``keep_last`` versions; return how many were removed."""
        return self._call(self._store.prune, state_id, keep_last)

    def list_states(self, *, tag: str | None = None) -> list[str]:
        """Return the ids of existing states (whose head carries ``tag``, if given)."""
        return self._call(self._store.list_states, tag=tag)

    def iter_states(self, *, tag: str | None = None) -> Iterator[str]:
        """Iterate over the ids of existing states, a page at a time."""
        portal = self._get_portal()
        iterator = portal.call(lambda: _start(self._store, tag))
        while True:
            try:
                yield portal.call(iterator.__anext__)
            except StopAsyncIteration:
                return

    def get_stats(self) -> dict[str, Any]:
        """Return server figures, this store's counters and the pool's use."""
        return self._call(self._store.get_stats)


async def _start(store: AsyncRedisStatePersistence, tag: str | None) -> Any:
    # Created on the portal's loop, so the async generator belongs to it.
    return store.iter_states(tag=tag)
