"""The one point where the checkpointer meets the store: its storage layer and its codec.

Everything the saver sends to Redis goes through :class:`StoreBackend`, built
over a :class:`recostate.RedisStatePersistence`: scripts run through the
store's storage layer (``store.storage``), so they share that store's pool,
retries, error translation and closed state, and the store is never closed
here; channel values are framed, chunked and checked by the store's codec
(``store.codec``), under the store's settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from recostate._codec import Codec
from recostate._persistence import RedisStatePersistence
from recostate._redis.script import Script

__all__ = ["Script", "StoreBackend"]

Arg = bytes | str | int | float


class StoreBackend:
    """Runs the checkpointer's scripts and commands on one store's connection pool."""

    __slots__ = ("_store",)

    def __init__(self, store: RedisStatePersistence) -> None:
        if not isinstance(store, RedisStatePersistence):
            raise TypeError(
                "store must be a recostate.RedisStatePersistence "
                f"(use recostate.sync's .async_store for a blocking store), not {type(store).__name__}"
            )
        self._store = store

    @property
    def store(self) -> RedisStatePersistence:
        """The store whose pool this backend uses."""
        return self._store

    @property
    def key_prefix(self) -> str:
        """The store's ``key_prefix``: every key the checkpointer writes starts with it."""
        return self._store.config.key_prefix

    @property
    def default_ttl(self) -> int | None:
        """The store's ``default_ttl`` in seconds, applied to every key of a thread."""
        return self._store.config.default_ttl

    @property
    def codec(self) -> Codec:
        """The store's codec: channel values are stored as its frames and chunks."""
        return self._store.codec

    async def run(self, script: Script, keys: Sequence[bytes], args: Sequence[Arg]) -> Any:
        """Run ``script`` (EVALSHA, loaded again on NOSCRIPT) with retries."""
        return await self._store.storage.run_script(script, keys, args)

    def scan(self, match: bytes) -> AsyncIterator[bytes]:
        """Yield the keys matching ``match`` (SCAN on every primary, never KEYS)."""
        return self._store.storage.scan(match)
