"""Version numbers, explicit versions, compare-and-set, retention, rollback, deletion, prune."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from recostate import (
    RedisStatePersistence,
    VersionConflictError,
    VersionNotFoundError,
)
from recostate._codec import VersionHeader
from recostate._storage import Saved
from tests.conftest import MakeStore
from tests.layout import state_keys, versions_key


async def test_versions_count_up_from_one(store: RedisStatePersistence) -> None:
    numbers = [(await store.save("s", {"i": i})).version for i in range(5)]
    assert numbers == [1, 2, 3, 4, 5]
    for i in range(5):
        assert await store.load("s", i + 1) == {"i": i}
    assert await store.load("s") == {"i": 4}


async def test_created_at_is_kept_from_first_version(store: RedisStatePersistence) -> None:
    first = await store.save("s", 1)
    await asyncio.sleep(0.01)
    second = await store.save("s", 2)
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    versions = await store.list_versions("s")
    assert [v.created_at for v in versions] == [first.created_at] * 2


async def test_explicit_version_must_exceed_head(store: RedisStatePersistence) -> None:
    assert (await store.save("s", "a", version=10)).version == 10
    assert (await store.save("s", "b")).version == 11
    for bad in (11, 5, 0):
        with pytest.raises(VersionConflictError) as info:
            await store.save("s", "c", version=bad)
        assert info.value.actual == 11
        assert info.value.state_id == "s"
    assert await store.load("s") == "b"
    assert [m.version for m in await store.list_versions("s")] == [10, 11]


async def test_compare_and_set(store: RedisStatePersistence) -> None:
    assert (await store.save("s", "v1", expected_version=0)).version == 1
    with pytest.raises(VersionConflictError) as info:
        await store.save("s", "again", expected_version=0)
    assert (info.value.expected, info.value.actual) == (0, 1)
    assert (await store.save("s", "v2", expected_version=1)).version == 2
    with pytest.raises(VersionConflictError) as info:
        await store.save("s", "stale", expected_version=1)
    assert (info.value.state_id, info.value.expected, info.value.actual) == ("s", 1, 2)
    assert await store.load("s") == "v2"
    assert len(await store.list_versions("s")) == 2


async def test_compare_and_set_on_missing_state(store: RedisStatePersistence) -> None:
    with pytest.raises(VersionConflictError) as info:
        await store.save("new", "x", expected_version=3)
    assert (info.value.expected, info.value.actual) == (3, 0)
    assert not await store.exists("new")


async def test_concurrent_compare_and_set_lets_exactly_one_writer_win(
    store: RedisStatePersistence,
) -> None:
    await store.save("s", 0)

    async def attempt(n: int) -> int | None:
        try:
            return (await store.save("s", n, expected_version=1)).version
        except VersionConflictError:
            return None

    results = await asyncio.gather(*(attempt(n) for n in range(20)))
    winners = [r for r in results if r is not None]
    assert winners == [2]
    stats = await store.get_stats()
    assert stats["store"]["conflicts"] == 19


async def test_concurrent_counter_through_compare_and_set(store: RedisStatePersistence) -> None:
    await store.save("counter", 0)

    async def increment() -> None:
        while True:
            found = await store.load_with_metadata("counter")
            assert found is not None
            value, meta = found
            try:
                await store.save("counter", value + 1, expected_version=meta.version)
                return
            except VersionConflictError:
                await asyncio.sleep(0)

    await asyncio.gather(*(increment() for _ in range(25)))
    found = await store.load_with_metadata("counter")
    assert found is not None
    assert found[0] == 25 and found[1].version == 26


async def test_retention_keeps_newest_max_versions(
    make_store: MakeStore, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    persistence = make_store(max_versions=3)
    for i in range(7):
        await persistence.save("s", i)
    versions = await persistence.list_versions("s")
    assert [m.version for m in versions] == [5, 6, 7]
    assert await persistence.load("s", 4) is None
    assert await persistence.load("s", 5) == 4
    # Trimmed versions leave nothing behind: three frames, three numbers listed.
    assert await raw_redis.hlen(versions_key(key_prefix, "s")) == 3
    assert await raw_redis.llen(state_keys(key_prefix, "s").all[1]) == 3


async def test_versioning_off_keeps_only_head_but_numbers_climb(make_store: MakeStore) -> None:
    persistence = make_store(enable_versioning=False)
    for i in range(4):
        meta = await persistence.save("s", i)
    assert meta.version == 4
    assert [m.version for m in await persistence.list_versions("s")] == [4]
    assert await persistence.load("s", 3) is None
    assert (await persistence.save("s", "cas", expected_version=4)).version == 5
    with pytest.raises(VersionConflictError):
        await persistence.save("s", "stale", expected_version=4)


async def test_list_versions_oldest_first_and_unknown_empty(store: RedisStatePersistence) -> None:
    assert await store.list_versions("missing") == []
    for i in range(3):
        await store.save("s", "x" * (i * 1000), tags=[f"t{i}"])
    versions = await store.list_versions("s")
    assert [m.version for m in versions] == [1, 2, 3]
    assert [m.tags for m in versions] == [("t0",), ("t1",), ("t2",)]
    for meta in versions:
        assert meta == await store.get_metadata("s", meta.version)


async def test_get_metadata_of_head_and_missing_version(store: RedisStatePersistence) -> None:
    await store.save("s", 1)
    second = await store.save("s", 2)
    assert await store.get_metadata("s") == second
    assert await store.get_metadata("s", 9) is None


async def test_metadata_with_many_long_tags(store: RedisStatePersistence) -> None:
    tags = [f"tag-{i}-" + "x" * 900 for i in range(40)]
    meta = await store.save("s", 1, tags=tags)
    assert meta.tags == tuple(tags)
    assert await store.get_metadata("s") == meta
    assert (await store.list_versions("s"))[0] == meta


async def test_rollback_creates_new_head(store: RedisStatePersistence) -> None:
    await store.save("s", {"v": 1}, tags=["one"])
    await store.save("s", {"v": 2})
    await store.save("s", {"v": 3})
    meta = await store.rollback("s", 1)
    assert meta.version == 4
    assert meta.rolled_back_from == 1
    assert meta.tags == ("one",)
    assert await store.load("s") == {"v": 1}
    assert [m.version for m in await store.list_versions("s")] == [1, 2, 3, 4]
    assert (await store.get_metadata("s")) == meta


async def test_rollback_applies_retention(make_store: MakeStore) -> None:
    persistence = make_store(max_versions=2)
    await persistence.save("s", "a")
    await persistence.save("s", "b")
    meta = await persistence.rollback("s", 1)
    assert meta.version == 3
    assert [m.version for m in await persistence.list_versions("s")] == [2, 3]
    assert await persistence.load("s") == "a"


async def test_rollback_to_missing_version_raises(store: RedisStatePersistence) -> None:
    with pytest.raises(VersionNotFoundError) as info:
        await store.rollback("missing", 1)
    assert (info.value.state_id, info.value.version) == ("missing", 1)
    await store.save("s", 1)
    with pytest.raises(VersionNotFoundError):
        await store.rollback("s", 2)
    assert isinstance(VersionNotFoundError("s", 1), LookupError)


async def test_delete_version_of_middle_keeps_head(store: RedisStatePersistence) -> None:
    for i in range(3):
        await store.save("s", i)
    assert await store.delete_version("s", 2) is True
    assert await store.delete_version("s", 2) is False
    assert [m.version for m in await store.list_versions("s")] == [1, 3]
    assert await store.load("s") == 2


async def test_delete_head_promotes_newest_remaining(store: RedisStatePersistence) -> None:
    await store.save("s", "a", tags=["old"])
    await store.save("s", "b", tags=["new"])
    assert await store.delete_version("s", 2) is True
    meta = await store.get_metadata("s")
    assert meta is not None and meta.version == 1 and meta.tags == ("old",)
    assert await store.load("s") == "a"
    assert await store.list_states(tag="new") == []
    assert await store.list_states(tag="old") == ["s"]
    # Numbers are never reused in the state's life.
    assert (await store.save("s", "c")).version == 3


async def test_delete_last_version_deletes_state(
    store: RedisStatePersistence, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    await store.save("s", "only", tags=["t"])
    assert await store.delete_version("s", 1) is True
    assert not await store.exists("s")
    assert await store.load("s") is None
    assert await store.list_states(tag="t") == []
    assert [k async for k in raw_redis.scan_iter(match=f"{key_prefix}*")] == []
    assert (await store.save("s", "fresh")).version == 1


async def test_delete_removes_every_key(
    store: RedisStatePersistence, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    for i in range(3):
        await store.save("s", i, tags=["a", "b"])
    await store.save("other", 1, tags=["a"])
    assert await store.delete("s") is True
    assert await store.delete("s") is False
    assert not await store.exists("s")
    assert await store.list_versions("s") == []
    assert await store.list_states(tag="a") == ["other"]
    remaining = [k async for k in raw_redis.scan_iter(match=f"{key_prefix}*")]
    assert remaining and all(b"other" in k or b":t:a" in k for k in remaining)


async def test_prune_keeps_newest(store: RedisStatePersistence) -> None:
    for i in range(6):
        await store.save("s", i)
    assert await store.prune("s", 2) == 4
    assert [m.version for m in await store.list_versions("s")] == [5, 6]
    assert await store.prune("s", 5) == 0
    assert await store.prune("missing", 1) == 0
    assert await store.load("s") == 5


async def test_prune_to_zero_deletes_state(store: RedisStatePersistence) -> None:
    await store.save("s", 1)
    await store.save("s", 2)
    assert await store.prune("s", 0) == 2
    assert not await store.exists("s")


async def test_write_id_makes_a_repeated_save_idempotent(store: RedisStatePersistence) -> None:
    # A save whose reply was lost is sent again by the executor with the same
    # write id; the script must answer with the first result.
    storage = store.storage
    keys = storage.keys("s")
    raw = store.codec.encode_state({"v": 1})
    header = VersionHeader(1_700_000_000_000, len(raw), 0, 0, ())
    encoded = await store.codec.encode(raw, header, "s")

    async def send(write_id: bytes, expected: int | None) -> Saved:
        return await storage.save(
            keys,
            encoded,
            write_id=write_id,
            expected=expected,
            explicit=None,
            keep=10,
            ttl_ms=None,
        )

    first = await send(b"w" * 12, None)
    again = await send(b"w" * 12, None)
    assert not first.duplicate and again.duplicate
    assert first.version == again.version == 1
    assert again.first_head is not None and encoded.frame.startswith(again.first_head)
    assert [m.version for m in await store.list_versions("s")] == [1]
    # A compare-and-set retry does not conflict with itself either.
    assert not (await send(b"x" * 12, 1)).duplicate
    retried = await send(b"x" * 12, 1)
    assert retried.duplicate and retried.version == 2
    assert [m.version for m in await store.list_versions("s")] == [1, 2]
    assert await store.load("s") == {"v": 1}
