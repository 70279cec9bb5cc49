"""Corrupted stored bytes are always an IntegrityError, never garbage, never None."""

from __future__ import annotations

import os

import pytest
import redis.asyncio as aioredis

from recostate import IntegrityError, RedisStatePersistence
from tests.layout import aget_version, aset_version


async def _version_key(raw: aioredis.Redis, prefix: str, version: int) -> tuple[str, str, int]:
    return (prefix, "s", version)


async def _get(raw: aioredis.Redis, key: tuple[str, str, int]) -> bytes:
    return await aget_version(raw, *key)


@pytest.mark.parametrize("size", [10, 5000, 100_000])
async def test_flipped_bit_is_detected(
    store: RedisStatePersistence, raw_redis: aioredis.Redis, key_prefix: str, size: int
) -> None:
    await store.save("s", {"text": "abc" * size})
    key = await _version_key(raw_redis, key_prefix, 1)
    frame = bytearray(await _get(raw_redis, key))
    for position in (len(frame) - 1, len(frame) // 2, 12, 3):
        damaged = bytearray(frame)
        damaged[position] ^= 0x10
        await aset_version(raw_redis, *key, bytes(damaged))
        with pytest.raises(IntegrityError) as info:
            await store.load("s")
        assert info.value.state_id == "s" and info.value.version == 1
    stats = await store.get_stats()
    assert stats["store"]["integrity_failures"] == 4


async def test_truncated_and_random_frames_are_detected(
    store: RedisStatePersistence, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    await store.save("s", {"a": list(range(1000))})
    key = await _version_key(raw_redis, key_prefix, 1)
    frame = await _get(raw_redis, key)
    for damaged in (
        frame[:-1],
        frame[:20],
        frame[:5],
        b"",
        os.urandom(300),
        b"RS" + os.urandom(40),
    ):
        await aset_version(raw_redis, *key, damaged)
        with pytest.raises(IntegrityError):
            await store.load("s")


async def test_payload_of_another_state_swapped_in_is_detected(
    store: RedisStatePersistence, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    await store.save("s", {"who": "s", "pad": "x" * 3000})
    await store.save("s", {"who": "t", "pad": "y" * 3000})
    first = await _get(raw_redis, await _version_key(raw_redis, key_prefix, 1))
    second_key = await _version_key(raw_redis, key_prefix, 2)
    second = await _get(raw_redis, second_key)
    # Keep version 2's prefix, checksum and header; put version 1's payload after them.
    header_end = 14 + int.from_bytes(second[6:10], "big")
    await aset_version(raw_redis, *second_key, second[:header_end] + first[header_end:])
    with pytest.raises(IntegrityError):
        await store.load("s")
    assert await store.load("s", 1) == {"who": "s", "pad": "x" * 3000}


async def test_rollback_from_corrupted_version_raises(
    store: RedisStatePersistence, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    await store.save("s", "good")
    await store.save("s", "next")
    key = await _version_key(raw_redis, key_prefix, 1)
    frame = bytearray(await _get(raw_redis, key))
    frame[-1] ^= 1
    await aset_version(raw_redis, *key, bytes(frame))
    with pytest.raises(IntegrityError):
        await store.rollback("s", 1)
    assert [m.version for m in await store.list_versions("s")] == [1, 2]


async def test_corrupted_header_fails_metadata_reads(
    store: RedisStatePersistence, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    await store.save("s", "x")
    key = await _version_key(raw_redis, key_prefix, 1)
    await aset_version(raw_redis, *key, b"garbage that is no frame at all")
    with pytest.raises(IntegrityError):
        await store.get_metadata("s")
    with pytest.raises(IntegrityError):
        await store.list_versions("s")
