"""What tests need of the storage layout to read or damage stored bytes by hand.

Only the storage layer builds keys; tests that must reach below it (to flip
bits in a stored version, or to check what a version costs) go through these
helpers, which ask the layer for the names.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from recostate._storage.keys import KeySpace, StateKeys

__all__ = [
    "aget_version",
    "aset_version",
    "get_version",
    "set_version",
    "state_keys",
    "versions_key",
]


def state_keys(prefix: str, state_id: str) -> StateKeys:
    """The keys of ``state_id`` under ``prefix`` (``.state`` is the state hash)."""
    return KeySpace(prefix).state(state_id)


def versions_key(prefix: str, state_id: str) -> bytes:
    """The hash that holds a state's version frames, one field per version number."""
    return state_keys(prefix, state_id).all[2]


def get_version(client: redis.Redis, prefix: str, state_id: str, version: int) -> bytes:
    """The stored frame of a version (its manifest, for a chunked one)."""
    frame = client.hget(versions_key(prefix, state_id), str(version))
    assert isinstance(frame, bytes), f"version {version} of {state_id!r} is not stored"
    return frame


def set_version(
    client: redis.Redis, prefix: str, state_id: str, version: int, frame: bytes
) -> None:
    """Replace the stored frame of a version."""
    client.hset(versions_key(prefix, state_id), str(version), frame)


async def aget_version(
    client: aioredis.Redis | RedisCluster, prefix: str, state_id: str, version: int
) -> bytes:
    """:func:`get_version` on an asyncio client."""
    frame: Any = await client.hget(versions_key(prefix, state_id), str(version))
    assert isinstance(frame, bytes), f"version {version} of {state_id!r} is not stored"
    return frame


async def aset_version(
    client: aioredis.Redis | RedisCluster, prefix: str, state_id: str, version: int, frame: bytes
) -> None:
    """:func:`set_version` on an asyncio client."""
    await client.hset(versions_key(prefix, state_id), str(version), frame)


def key_ttls(url: str, prefix: str, state_id: str) -> dict[bytes, int]:
    """The PTTL of every existing key of a state (-1: no expiry), by key."""
    client = redis.Redis.from_url(url)
    try:
        out: dict[bytes, int] = {}
        for key in state_keys(prefix, state_id).all:
            ttl = int(client.pttl(key))
            if ttl != -2:
                out[key] = ttl
        return out
    finally:
        client.close()


def state_ttl(url: str, prefix: str, state_id: str) -> int:
    """The PTTL shared by every key of a state (asserting they share one), -1 for none."""
    ttls = key_ttls(url, prefix, state_id)
    assert ttls, f"state {state_id!r} has no key"
    values = set(ttls.values())
    # Keys written in one script get the same expiry; allow the clock to move 1 s.
    assert max(values) - min(values) <= 1000 or values == {-1}, ttls
    return min(values)
