"""The contenders: recostate, the redis-py code a user writes by hand, and plain caches.

Each one saves and loads a state under a key, on the same server, in its own
key namespace. Only recostate and the hand-written code keep versions; the
plain caches (aiocache, cashews) just SET and GET a blob.
"""

from __future__ import annotations

import importlib.util
import time
import zlib
from typing import Any, Protocol
from urllib.parse import urlsplit

import lz4.block
import msgspec
import redis.asyncio as aioredis

from recostate import RedisStatePersistence

#: The TTL the hand-written code sets (the store under test keeps versions forever).
HAND_TTL = 3600


class Contender(Protocol):
    """What every benchmarked implementation offers."""

    name: str
    versioned: bool

    async def open(self) -> None:
        """Connect."""

    async def save(self, key: str, state: Any) -> None:
        """Store ``state`` under ``key`` (a new version where versions are kept)."""

    async def load(self, key: str) -> Any:
        """Return the latest state under ``key``."""

    async def close(self) -> None:
        """Release connections."""


class Recostate:
    """recostate with its default settings (LZ4, versioning on, 10 versions kept)."""

    name = "recostate"
    versioned = True

    def __init__(self, url: str, prefix: str) -> None:
        self.store = RedisStatePersistence(url, key_prefix=prefix)

    async def open(self) -> None:
        await self.store.connect()

    async def save(self, key: str, state: Any) -> None:
        await self.store.save(key, state)

    async def load(self, key: str) -> Any:
        return await self.store.load(key)

    async def close(self) -> None:
        await self.store.aclose()


class HandWritten:
    """The redis-py code a user writes for the same job, without recostate.

    Per save: msgspec, LZ4 and CRC-32 inline, then one MULTI/EXEC pipeline
    (SET payload EX, HSET metadata, EXPIRE, ZADD version index, EXPIRE). Per
    load: HMGET of the metadata, then GET of the payload, checksum verified.
    Version numbers come from a counter in the process (no round trip).
    """

    name = "redis-py by hand"
    versioned = True

    def __init__(self, url: str, prefix: str) -> None:
        # The same pool bounds as recostate's defaults: 50 connections, callers
        # wait for one. (redis-py's default pool raises past 100 connections.)
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=50, timeout=10)
        self.client = aioredis.Redis.from_pool(pool)
        self.prefix = prefix
        self.encoder = msgspec.msgpack.Encoder()
        self.decoder = msgspec.msgpack.Decoder()
        self.versions: dict[str, int] = {}

    async def open(self) -> None:
        await self.client.ping()

    async def save(self, key: str, state: Any) -> None:
        raw = self.encoder.encode(state)
        packed = lz4.block.compress(raw, store_size=False)
        crc = zlib.crc32(packed)
        version = self.versions.get(key, 0) + 1
        self.versions[key] = version
        base = f"{self.prefix}:{key}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(f"{base}:v{version}", packed, ex=HAND_TTL)
            pipe.hset(
                f"{base}:meta",
                mapping={
                    "version": version,
                    "size": len(raw),
                    "crc32": crc,
                    "codec": "lz4",
                    "updated_at": time.time(),
                },
            )
            pipe.expire(f"{base}:meta", HAND_TTL)
            pipe.zadd(f"{base}:versions", {str(version): version})
            pipe.expire(f"{base}:versions", HAND_TTL)
            await pipe.execute()

    async def load(self, key: str) -> Any:
        base = f"{self.prefix}:{key}"
        found: list[Any] = await self.client.hmget(f"{base}:meta", "version", "size", "crc32")
        version, size, crc = found
        if version is None:
            return None
        packed: Any = await self.client.get(f"{base}:v{int(version)}")
        if packed is None:
            return None
        if zlib.crc32(packed) != int(crc):
            raise ValueError("checksum mismatch")
        return self.decoder.decode(lz4.block.decompress(packed, uncompressed_size=int(size)))

    async def close(self) -> None:
        await self.client.aclose()


def available_peers() -> dict[str, bool]:
    """Tell which optional plain-cache peers are installed."""
    return {name: importlib.util.find_spec(name) is not None for name in ("aiocache", "cashews")}


class Aiocache:
    """aiocache's Redis backend, set/get of msgpack bytes (no versions, no checksum)."""

    name = "aiocache"
    versioned = False

    def __init__(self, url: str, prefix: str) -> None:
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
        self.cache = RedisCache(
            endpoint=parts.hostname,
            port=parts.port or 6379,
            db=db,
            password=parts.password,
            namespace=prefix,
            serializer=MsgpackSerializer(),
        )

    async def open(self) -> None:
        await self.cache.exists("probe")

    async def save(self, key: str, state: Any) -> None:
        await self.cache.set(key, state)

    async def load(self, key: str) -> Any:
        return await self.cache.get(key)

    async def close(self) -> None:
        await self.cache.close()


class Cashews:
    """cashews on Redis, set/get of msgpack bytes (no versions, no checksum)."""

    name = "cashews"
    versioned = False

    def __init__(self, url: str, prefix: str) -> None:
        from cashews import Cache

        self.cache = Cache()
        # Values are given as bytes, so cashews never pickles them.
        self.cache.setup(url, pickle_type="null")
        self.prefix = prefix

    async def open(self) -> None:
        await self.cache.init()

    async def save(self, key: str, state: Any) -> None:
        await self.cache.set(f"{self.prefix}:{key}", msgspec.msgpack.encode(state))

    async def load(self, key: str) -> Any:
        raw = await self.cache.get(f"{self.prefix}:{key}")
        return None if raw is None else msgspec.msgpack.decode(raw)

    async def close(self) -> None:
        await self.cache.close()


def contenders(
    url: str, run_id: str, *, skip: frozenset[str] = frozenset()
) -> tuple[list[Contender], list[str]]:
    """Build every contender that is installed; return them and notes on those left out."""
    made: list[Contender] = [
        Recostate(url, f"bench-{run_id}-rs"),
        HandWritten(url, f"bench-{run_id}-hw"),
    ]
    notes: list[str] = []
    peers = available_peers()
    for name, cls in (("aiocache", Aiocache), ("cashews", Cashews)):
        if name in skip:
            continue
        if not peers[name]:
            notes.append(f"{name} is not installed (pip install -e '.[bench]'): skipped")
            continue
        made.append(cls(url, f"bench-{run_id}-{name[:2]}"))
    return made, notes
