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
from recostate._storage.scripts import HEAD_FIELD, HEAD_RECORD

__all__ = [
    "aget_version",
    "ahead_record",
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
    """The hash that holds a state's version frames: the head's record, then one field per older version."""
    return state_keys(prefix, state_id).all[2]


def _split_head(record: Any, version: int) -> tuple[bytes, bytes] | None:
    """The head record's 16-byte prefix and frame, if ``record`` is version ``version``'s."""
    if not isinstance(record, bytes) or len(record) < HEAD_RECORD.size:
        return None
    number, _ = HEAD_RECORD.unpack_from(record)
    if int(number) != version:
        return None
    return record[: HEAD_RECORD.size], record[HEAD_RECORD.size :]


def get_version(client: redis.Redis, prefix: str, state_id: str, version: int) -> bytes:
    """The stored frame of a version (its manifest, for a chunked one).

    The head's frame is read from its record (field ``h``, after the 16-byte
    prefix of its number and the state's creation time); older versions from
    the field named by their number.
    """
    key = versions_key(prefix, state_id)
    head = _split_head(client.hget(key, HEAD_FIELD), version)
    frame = head[1] if head is not None else client.hget(key, str(version))
    assert isinstance(frame, bytes), f"version {version} of {state_id!r} is not stored"
    return frame


def set_version(
    client: redis.Redis, prefix: str, state_id: str, version: int, frame: bytes
) -> None:
    """Replace the stored frame of a version (the head's inside its record)."""
    key = versions_key(prefix, state_id)
    head = _split_head(client.hget(key, HEAD_FIELD), version)
    if head is not None:
        client.hset(key, HEAD_FIELD, head[0] + frame)
    else:
        client.hset(key, str(version), frame)


async def aget_version(
    client: aioredis.Redis | RedisCluster, prefix: str, state_id: str, version: int
) -> bytes:
    """:func:`get_version` on an asyncio client."""
    key = versions_key(prefix, state_id)
    head = _split_head(await client.hget(key, HEAD_FIELD), version)
    frame: Any = head[1] if head is not None else await client.hget(key, str(version))
    assert isinstance(frame, bytes), f"version {version} of {state_id!r} is not stored"
    return frame


async def aset_version(
    client: aioredis.Redis | RedisCluster, prefix: str, state_id: str, version: int, frame: bytes
) -> None:
    """:func:`set_version` on an asyncio client."""
    key = versions_key(prefix, state_id)
    head = _split_head(await client.hget(key, HEAD_FIELD), version)
    if head is not None:
        await client.hset(key, HEAD_FIELD, head[0] + frame)
    else:
        await client.hset(key, str(version), frame)


async def ahead_record(
    client: aioredis.Redis | RedisCluster, prefix: str, state_id: str
) -> tuple[int, int, bytes] | None:
    """A state's head record: (version, the state's created_at_ms, frame), or ``None``."""
    record: Any = await client.hget(versions_key(prefix, state_id), HEAD_FIELD)
    if record is None:
        return None
    version, created = HEAD_RECORD.unpack_from(record)
    return int(version), int(created), bytes(record[HEAD_RECORD.size :])


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
