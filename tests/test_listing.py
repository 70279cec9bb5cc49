"""Listing states, by SCAN and by tag, exact after deletes, expiry and re-tagging."""

from __future__ import annotations

import redis.asyncio as aioredis

from recostate import RedisStatePersistence
from tests.conftest import MakeStore


async def test_list_states_returns_every_existing_id(store: RedisStatePersistence) -> None:
    assert await store.list_states() == []
    ids = {f"state-{i}" for i in range(300)}
    for state_id in ids:
        await store.save(state_id, 1)
    listed = await store.list_states()
    assert len(listed) == len(ids) and set(listed) == ids
    assert {s async for s in store.iter_states()} == ids


async def test_list_states_ignores_other_prefixes_and_foreign_keys(
    store: RedisStatePersistence, make_store: MakeStore, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    other = make_store(key_prefix=key_prefix + "-other")
    await store.save("mine", 1)
    await other.save("theirs", 1)
    await raw_redis.set(f"{key_prefix}:unrelated", b"x")
    await raw_redis.hset(f"{key_prefix}:{{0000000000000000}}:x:y", "a", "b")
    try:
        assert await store.list_states() == ["mine"]
        assert await other.list_states() == ["theirs"]
    finally:
        await other.delete("theirs")


async def test_list_by_tag(store: RedisStatePersistence) -> None:
    await store.save("a", 1, tags=["red", "big"])
    await store.save("b", 1, tags=["red"])
    await store.save("c", 1)
    assert sorted(await store.list_states(tag="red")) == ["a", "b"]
    assert await store.list_states(tag="big") == ["a"]
    assert await store.list_states(tag="none") == []
    assert sorted([s async for s in store.iter_states(tag="red")]) == ["a", "b"]


async def test_retagged_head_leaves_old_tag(store: RedisStatePersistence) -> None:
    await store.save("a", 1, tags=["draft"])
    await store.save("a", 2, tags=["final"])
    assert await store.list_states(tag="draft") == []
    assert await store.list_states(tag="final") == ["a"]
    await store.save("a", 3)
    assert await store.list_states(tag="final") == []


async def test_deleted_state_leaves_tag_listing(store: RedisStatePersistence) -> None:
    await store.save("a", 1, tags=["t"])
    await store.save("b", 1, tags=["t"])
    await store.delete("a")
    assert await store.list_states(tag="t") == ["b"]
    assert await store.list_states() == ["b"]


async def test_stale_tag_member_is_filtered_and_dropped(
    store: RedisStatePersistence, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    await store.save("a", 1, tags=["t"])
    tag_key = f"{key_prefix}:t:t"
    # As after an expiry: the set names a state that no longer exists.
    await raw_redis.sadd(tag_key, "ghost")
    assert await store.list_states(tag="t") == ["a"]
    assert await raw_redis.smembers(tag_key) == {b"a"}


async def test_many_tagged_states_page_through(store: RedisStatePersistence) -> None:
    ids = {f"s{i}" for i in range(1200)}
    for state_id in ids:
        await store.save(state_id, 0, tags=["bulk"])
    assert set(await store.list_states(tag="bulk")) == ids


async def test_tag_with_special_characters(store: RedisStatePersistence) -> None:
    await store.save("x", 1, tags=["a:b", "{c}", "sp ace", "ü*?"])
    for tag in ("a:b", "{c}", "sp ace", "ü*?"):
        assert await store.list_states(tag=tag) == ["x"]
