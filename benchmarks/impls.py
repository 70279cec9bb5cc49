"""The contenders: recostate, the redis-py code a user writes by hand, and plain caches.

Each one saves and loads a state under a key, on the same server, in its own
key namespace, in a :class:`Config`: the seed's quick start (``default_ttl=3600``,
``max_versions=10``) or the same without a TTL. recostate and the hand-written
code keep versions, metadata and a checksum; the plain caches (aiocache,
cashews) just SET and GET a blob, with the same TTL.
"""

from __future__ import annotations

import importlib.util
import inspect
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import lz4.block
import msgspec
import redis.asyncio as aioredis

from recostate import RedisStatePersistence


@dataclass(frozen=True)
class Config:
    """What every contender is asked to do per save: expire after ``ttl`` s, keep ``keep`` versions."""

    name: str
    ttl: int | None
    keep: int = 10

    def describe(self) -> str:
        """``default_ttl=3600, max_versions=10``."""
        return f"default_ttl={self.ttl}, max_versions={self.keep}"


#: The seed's quick start: the headline configuration.
SEED = Config("seed", 3600)
#: The same with no expiry.
NO_TTL = Config("no-ttl", None)

RECOSTATE = "recostate"
HAND = "redis-py by hand"


def store_accepts(option: str) -> bool:
    """Whether this recostate's ``RedisStatePersistence`` takes the keyword ``option``.

    Scenarios pass options that only newer versions have (``chunk_threshold``)
    only when the constructor accepts them, so the same code measures before
    and after.
    """
    return option in inspect.signature(RedisStatePersistence).parameters


def store_default(option: str) -> Any:
    """The default of a constructor keyword of ``RedisStatePersistence`` (``None`` if absent)."""
    parameter = inspect.signature(RedisStatePersistence).parameters.get(option)
    return None if parameter is None else parameter.default


class Contender(Protocol):
    """What every benchmarked implementation offers."""

    name: str

    async def open(self, tasks: int) -> None:
        """Connect, ready for ``tasks`` concurrent callers."""

    async def save(self, key: str, state: Any) -> None:
        """Store ``state`` under ``key`` (a new version where versions are kept)."""

    async def load(self, key: str) -> Any:
        """Return the latest state under ``key``."""

    async def close(self) -> None:
        """Release connections."""


class Recostate:
    """recostate configured as a user following the quick start would.

    One store for the whole run, with its default pool (a blocking pool of
    ``max_connections`` from recostate's defaults): what a service holds.
    """

    def __init__(
        self, url: str, prefix: str, config: Config, *, name: str = RECOSTATE, **options: Any
    ) -> None:
        self.name = name
        self.store = RedisStatePersistence(
            url, key_prefix=prefix, default_ttl=config.ttl, max_versions=config.keep, **options
        )
        self._connected = False

    async def open(self, tasks: int) -> None:
        if not self._connected:
            await self.store.connect()
            self._connected = True

    async def save(self, key: str, state: Any) -> None:
        await self.store.save(key, state)

    async def load(self, key: str) -> Any:
        return await self.store.load(key)

    async def close(self) -> None:
        await self.store.aclose()


#: The hand-written blob: CRC-32 of the LZ4 bytes and the encoded size, then the LZ4 bytes.
_BLOB_HEADER = struct.Struct(">II")


class HandWritten:
    """The redis-py code a competent user writes for the same job, without recostate.

    Layout per state: a list of its last ``keep`` versions, newest first (each
    a blob: CRC-32 and size, then the LZ4-compressed msgpack), and a hash of
    the head's metadata (version, sizes, codec, checksum, time).

    Per save: msgspec, LZ4 and CRC-32 inline, then one pipelined ``MULTI``/``EXEC``:
    ``LPUSH`` the blob, ``LTRIM`` to ``keep``, ``HINCRBY`` the version (decided
    by the server, so several writers and restarts never reuse a number),
    ``HSET`` the metadata, and with a TTL an ``EXPIRE`` of both keys. Per load:
    one ``LINDEX 0`` (the blob carries its own checksum, so no second read
    and no transaction), verified, decompressed, decoded.

    The pool is what ``redis.asyncio.from_url(url, max_connections=tasks)``
    gives: as many connections as tasks, so no caller ever waits for one.
    """

    name = HAND

    def __init__(self, url: str, prefix: str, config: Config) -> None:
        self.url = url
        self.prefix = prefix
        self.ttl = config.ttl
        self.keep = config.keep
        self.encoder = msgspec.msgpack.Encoder()
        self.decoder = msgspec.msgpack.Decoder()
        self.client: aioredis.Redis = aioredis.Redis.from_url(url)
        self._pool_size = 0

    async def open(self, tasks: int) -> None:
        if tasks != self._pool_size:
            await self.client.aclose()
            self.client = aioredis.Redis.from_url(self.url, max_connections=tasks)
            self._pool_size = tasks
        await self.client.ping()

    async def save(self, key: str, state: Any) -> None:
        raw = self.encoder.encode(state)
        packed = lz4.block.compress(raw, store_size=False)
        crc = zlib.crc32(packed)
        versions, meta = f"{self.prefix}:{key}:v", f"{self.prefix}:{key}:m"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(versions, _BLOB_HEADER.pack(crc, len(raw)) + packed)
            pipe.ltrim(versions, 0, self.keep - 1)
            pipe.hincrby(meta, "version", 1)
            pipe.hset(
                meta,
                mapping={
                    "size": len(raw),
                    "stored": len(packed),
                    "codec": "lz4",
                    "crc32": crc,
                    "updated_at": time.time(),
                },
            )
            if self.ttl is not None:
                pipe.expire(versions, self.ttl)
                pipe.expire(meta, self.ttl)
            await pipe.execute()

    async def load(self, key: str) -> Any:
        blob: Any = await self.client.lindex(f"{self.prefix}:{key}:v", 0)
        if blob is None:
            return None
        crc, size = _BLOB_HEADER.unpack_from(blob)
        packed = memoryview(blob)[_BLOB_HEADER.size :]
        if zlib.crc32(packed) != crc:
            raise ValueError("checksum mismatch")
        return self.decoder.decode(lz4.block.decompress(packed, uncompressed_size=size))

    async def close(self) -> None:
        await self.client.aclose()


def available_peers() -> dict[str, bool]:
    """Tell which optional plain-cache peers are installed."""
    return {name: importlib.util.find_spec(name) is not None for name in ("aiocache", "cashews")}


class Aiocache:
    """aiocache's Redis backend, set/get of msgpack bytes (no versions, no checksum)."""

    name = "aiocache"

    def __init__(self, url: str, prefix: str, config: Config) -> None:
        from aiocache import RedisCache
        from aiocache.serializers import BaseSerializer

        class MsgpackSerializer(BaseSerializer):  # type: ignore[misc]
            DEFAULT_ENCODING = None

            def dumps(self, value: Any) -> bytes:
                return msgspec.msgpack.encode(value)

            def loads(self, value: bytes | None) -> Any:
                return None if value is None else msgspec.msgpack.decode(value)

        parts = urlsplit(url)
        db = int((parts.path or "/0").lstrip("/") or 0)
        self.ttl = config.ttl
        self.cache = RedisCache(
            endpoint=parts.hostname,
            port=parts.port or 6379,
            db=db,
            password=parts.password,
            namespace=prefix,
            serializer=MsgpackSerializer(),
        )

    async def open(self, tasks: int) -> None:
        await self.cache.exists("probe")

    async def save(self, key: str, state: Any) -> None:
        await self.cache.set(key, state, ttl=self.ttl)

    async def load(self, key: str) -> Any:
        return await self.cache.get(key)

    async def close(self) -> None:
        await self.cache.close()


class Cashews:
    """cashews on Redis, set/get of msgpack bytes (no versions, no checksum)."""

    name = "cashews"

    def __init__(self, url: str, prefix: str, config: Config) -> None:
        from cashews import Cache

        self.cache = Cache()
        # Values are given as bytes, so cashews never pickles them.
        self.cache.setup(url, pickle_type="null")
        self.prefix = prefix
        self.ttl = config.ttl
        self._ready = False

    async def open(self, tasks: int) -> None:
        if not self._ready:
            await self.cache.init()
            self._ready = True

    async def save(self, key: str, state: Any) -> None:
        await self.cache.set(f"{self.prefix}:{key}", msgspec.msgpack.encode(state), expire=self.ttl)

    async def load(self, key: str) -> Any:
        raw = await self.cache.get(f"{self.prefix}:{key}")
        return None if raw is None else msgspec.msgpack.decode(raw)

    async def close(self) -> None:
        await self.cache.close()


def contenders(
    url: str, run_id: str, config: Config, *, caches: bool = True
) -> tuple[list[Contender], list[str]]:
    """Build every contender that is installed; return them and notes on those left out.

    ``caches=False`` leaves the plain caches out (they are a reference, not a peer).
    """
    made: list[Contender] = [
        Recostate(url, f"bench-{run_id}-rs", config),
        HandWritten(url, f"bench-{run_id}-hw", config),
    ]
    notes: list[str] = []
    if not caches:
        return made, notes
    peers = available_peers()
    for name, cls in (("aiocache", Aiocache), ("cashews", Cashews)):
        if not peers[name]:
            notes.append(f"{name} is not installed (pip install -e '.[bench]'): skipped")
            continue
        made.append(cls(url, f"bench-{run_id}-{name[:2]}", config))
    return made, notes
