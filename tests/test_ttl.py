"""Expiry: default TTL, per-save TTL, no expiry, touch, TTL on every key of a state."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from recostate import RedisStatePersistence
from tests.conftest import MakeStore


async def _ttls(raw: aioredis.Redis, prefix: str) -> dict[bytes, int]:
    keys = [k async for k in raw.scan_iter(match=f"{prefix}:{{*")]
    return {key: await raw.pttl(key) for key in keys}


async def test_default_ttl_applies_to_every_key(
    make_store: MakeStore, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    persistence = make_store(default_ttl=100)
    for i in range(3):
        meta = await persistence.save("s", i)
    assert meta.ttl == 100
    ttls = await _ttls(raw_redis, key_prefix)
    assert len(ttls) == 4  # state hash, version list, versions, write ids
    assert all(90_000 < ttl <= 100_000 for ttl in ttls.values()), ttls


async def test_ttl_none_overrides_default(
    make_store: MakeStore, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    persistence = make_store(default_ttl=100)
    await persistence.save("s", 1)
    meta = await persistence.save("s", 2, ttl=None)
    assert meta.ttl is None
    assert set((await _ttls(raw_redis, key_prefix)).values()) == {-1}


async def test_explicit_ttl_and_no_default(
    store: RedisStatePersistence, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    meta = await store.save("s", 1)
    assert meta.ttl is None
    assert set((await _ttls(raw_redis, key_prefix)).values()) == {-1}
    meta = await store.save("s", 2, ttl=50)
    assert meta.ttl == 50
    assert all(40_000 < t <= 50_000 for t in (await _ttls(raw_redis, key_prefix)).values())
    assert [m.ttl for m in await store.list_versions("s")] == [None, 50]


async def test_expired_state_is_gone_everywhere(store: RedisStatePersistence) -> None:
    await store.save("short", {"x": 1}, ttl=1, tags=["temp"])
    await store.save("long", {"x": 2}, tags=["temp"])
    assert await store.exists("short")
    await asyncio.sleep(1.3)
    assert not await store.exists("short")
    assert await store.load("short") is None
    assert await store.get_metadata("short") is None
    assert await store.list_versions("short") == []
    assert await store.list_states() == ["long"]
    assert await store.list_states(tag="temp") == ["long"]
    # An expired state starts again at version 1.
    assert (await store.save("short", 3)).version == 1


async def test_touch_reapplies_ttl_to_every_key(
    store: RedisStatePersistence, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    await store.save("s", 1)
    await store.save("s", 2)
    assert await store.touch("s", 200) is True
    ttls = await _ttls(raw_redis, key_prefix)
    assert len(ttls) == 4 and all(190_000 < t <= 200_000 for t in ttls.values())
    assert await store.touch("s", None) is True
    assert set((await _ttls(raw_redis, key_prefix)).values()) == {-1}
    assert await store.touch("missing", 10) is False


async def test_touch_without_ttl_uses_default(
    make_store: MakeStore, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    persistence = make_store(default_ttl=300)
    await persistence.save("s", 1, ttl=None)
    assert await persistence.touch("s") is True
    assert all(290_000 < t <= 300_000 for t in (await _ttls(raw_redis, key_prefix)).values())
