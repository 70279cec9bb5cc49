"""The head's record: the newest version is read with one plain ``HGET``.

The versions hash keeps the head under field ``h`` (its number and the
state's creation time, then its frame); older versions are fields named by
their numbers. These tests check every write keeps that record right (save,
retention, rollback, prune, deleting the head, the 0.1 upgrade) and that a
load that cannot use it alone (a chunked head whose pieces the client does
not hold, a state without a record) falls back to the script.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from recostate import RedisStatePersistence
from recostate._storage.scripts import HEAD_FIELD
from tests.conftest import MakeStore, ServerHandle
from tests.layout import ahead_record, state_keys, versions_key

pytestmark = pytest.mark.integration

Raw = aioredis.Redis | RedisCluster


async def _fields(raw: Raw, prefix: str, state_id: str) -> set[bytes]:
    keys: Any = await raw.hkeys(versions_key(prefix, state_id))
    return set(keys)


async def _check_layout(raw: Raw, prefix: str, state_id: str) -> int:
    """Assert the record names the state hash's head, and no field holds it twice; return the head."""
    keys = state_keys(prefix, state_id)
    version: Any = await raw.hget(keys.state, "version")
    created: Any = await raw.hget(keys.state, "created_at_ms")
    listed: Any = await raw.lrange(keys.all[1], 0, -1)
    record = await ahead_record(raw, prefix, state_id)
    assert record is not None, f"{state_id!r} has no head record"
    assert record[0] == int(version) and record[1] == int(created)
    assert int(listed[-1]) == record[0], "the head is not the newest version listed"
    older = {str(int(v)).encode() for v in listed[:-1]}
    assert await _fields(raw, prefix, state_id) == {HEAD_FIELD, *older}
    return record[0]


async def _commands_sent(raw: aioredis.Redis, work: Any) -> list[str]:
    """The commands clients sent while ``work()`` ran (not those scripts ran), MONITOR's view."""
    async with raw.monitor() as monitor:
        await work()
        await raw.echo("end of work")
        seen = []
        while True:
            command = await monitor.next_command()
            if command["command"] == "ECHO end of work":
                marker = (command["client_address"], command["client_port"])
                break
            if command["client_type"] != "lua":
                seen.append(command)
    return [
        c["command"].split()[0]
        for c in seen
        if (c["client_address"], c["client_port"]) != marker  # the monitoring client's own
    ]


def _monitorable(server: ServerHandle) -> None:
    if server.embedded is None or server.cluster is not None:
        pytest.skip("watches every command of a server only this test uses")


def _chunked_state(step: int = 0) -> dict[str, Any]:
    # Large and varied enough to be chunked with a compression dictionary.
    return {
        "step": step,
        "messages": [{"n": i, "text": f"message {i}.{step} " + "word " * 30} for i in range(3000)],
    }


async def test_loading_the_head_is_one_plain_hget(
    store: RedisStatePersistence, raw_redis: Raw, redis_server: ServerHandle, key_prefix: str
) -> None:
    _monitorable(redis_server)
    assert isinstance(raw_redis, aioredis.Redis)
    await store.save("s", {"n": 1})
    saved = await store.save("s", {"n": 2}, tags=["t"])
    assert await _check_layout(raw_redis, key_prefix, "s") == 2
    found: list[Any] = []

    async def load() -> None:
        found.append(await store.load_with_metadata("s"))

    assert await _commands_sent(raw_redis, load) == ["HGET"]
    state, meta = found[0]
    assert state == {"n": 2}
    assert meta.version == 2 and meta.created_at == saved.created_at and meta.tags == ("t",)
    # Older versions and a missing state still go through the script.
    assert await store.load("s", 1) == {"n": 1}
    assert await store.load("missing") is None


async def test_saves_move_the_old_head_to_its_number_and_retention_keeps_the_head(
    make_store: MakeStore, raw_redis: Raw, key_prefix: str
) -> None:
    store = make_store(max_versions=3)
    for i in range(1, 6):
        await store.save("s", {"n": i})
        assert await _check_layout(raw_redis, key_prefix, "s") == i
    assert await _fields(raw_redis, key_prefix, "s") == {HEAD_FIELD, b"3", b"4"}
    assert [m.version for m in await store.list_versions("s")] == [3, 4, 5]
    assert await store.load("s") == {"n": 5} and await store.load("s", 3) == {"n": 3}
    single = make_store(enable_versioning=False)
    for i in range(1, 4):
        await single.save("one", {"n": i})
    assert await _check_layout(raw_redis, key_prefix, "one") == 3
    assert await _fields(raw_redis, key_prefix, "one") == {HEAD_FIELD}
    assert await single.load("one") == {"n": 3}


async def test_deleting_the_head_promotes_the_newest_remaining_version(
    store: RedisStatePersistence, raw_redis: Raw, key_prefix: str
) -> None:
    await store.save("s", {"n": 1}, tags=["one"])
    await store.save("s", {"n": 2}, tags=["two"])
    await store.save("s", {"n": 3}, tags=["three"])
    assert await store.delete_version("s", 2)
    assert await _check_layout(raw_redis, key_prefix, "s") == 3
    assert await store.delete_version("s", 3)
    assert await _check_layout(raw_redis, key_prefix, "s") == 1
    assert await store.load("s") == {"n": 1}
    meta = await store.get_metadata("s")
    assert meta is not None and meta.version == 1 and meta.tags == ("one",)
    assert await store.list_states(tag="one") == ["s"]
    assert await store.list_states(tag="three") == []
    # Numbering goes on past the deleted head.
    assert (await store.save("s", {"n": 4})).version == 4
    assert await _check_layout(raw_redis, key_prefix, "s") == 4
    assert await store.load("s", 1) == {"n": 1}
    assert await store.delete_version("s", 4) and await store.delete_version("s", 1)
    assert not await raw_redis.exists(versions_key(key_prefix, "s"))
    assert await store.load("s") is None


async def test_rollback_and_prune_keep_the_record_right(
    store: RedisStatePersistence, raw_redis: Raw, key_prefix: str
) -> None:
    for i in range(1, 5):
        await store.save("s", {"n": i})
    rolled = await store.rollback("s", 2)
    assert rolled.version == 5 and rolled.rolled_back_from == 2
    assert await _check_layout(raw_redis, key_prefix, "s") == 5
    assert await store.load("s") == {"n": 2}
    assert await store.prune("s", 2) == 3
    assert await _check_layout(raw_redis, key_prefix, "s") == 5
    assert await store.load("s") == {"n": 2} and await store.load("s", 4) == {"n": 4}
    assert await store.prune("s", 1) == 1
    assert await _check_layout(raw_redis, key_prefix, "s") == 5
    assert await _fields(raw_redis, key_prefix, "s") == {HEAD_FIELD}
    assert await store.load("s") == {"n": 2}


async def test_a_chunked_head_needs_the_script_only_for_pieces_the_client_lacks(
    make_store: MakeStore, raw_redis: Raw, redis_server: ServerHandle, key_prefix: str
) -> None:
    _monitorable(redis_server)
    assert isinstance(raw_redis, aioredis.Redis)
    writer = make_store()
    await writer.save("big", _chunked_state())
    pieces: Any = await raw_redis.hkeys(state_keys(key_prefix, "big").all[3])
    assert b"d" in pieces  # the state has a compression dictionary
    reader = make_store()
    assert await reader.load("other") is None  # connected (and scripts loaded) before watching
    found: list[Any] = []

    async def load() -> None:
        found.append(await reader.load("big"))

    # A cold client: the record's manifest names pieces it lacks, then the script sends them.
    cold = await _commands_sent(raw_redis, load)
    assert cold[0] == "HGET" and "EVALSHA" in cold, cold
    assert found[-1] == _chunked_state()
    # Now it holds every piece (and the dictionary): the record alone will do.
    assert await _commands_sent(raw_redis, load) == ["HGET"]
    assert found[-1] == _chunked_state()
    # A new head with new chunks: the script again, for those.
    await writer.save("big", _chunked_state(1))
    changed = await _commands_sent(raw_redis, load)
    assert "EVALSHA" in changed, changed
    assert found[-1] == _chunked_state(1)
    assert await _check_layout(raw_redis, key_prefix, "big") == 2


async def test_a_state_without_a_record_still_reads_and_gets_one_on_its_next_save(
    store: RedisStatePersistence, raw_redis: Raw, key_prefix: str
) -> None:
    """A head kept under its own number (a 0.2 development build's layout) is not lost."""
    await store.save("s", {"n": 1})
    await store.save("s", {"n": 2})
    record = await ahead_record(raw_redis, key_prefix, "s")
    assert record is not None
    key = versions_key(key_prefix, "s")
    await raw_redis.hset(key, b"2", record[2])
    await raw_redis.hdel(key, HEAD_FIELD)
    assert await store.load("s") == {"n": 2}
    assert await store.load("s", 2) == {"n": 2}
    meta = await store.get_metadata("s")
    assert meta is not None and meta.version == 2
    assert [m.version for m in await store.list_versions("s")] == [1, 2]
    await store.save("s", {"n": 3})
    assert await _check_layout(raw_redis, key_prefix, "s") == 3
    assert await store.load("s", 2) == {"n": 2} and await store.load("s") == {"n": 3}
    # Deleting such a head promotes the next, leaving no stray field.
    record = await ahead_record(raw_redis, key_prefix, "s")
    assert record is not None
    await raw_redis.hset(key, b"3", record[2])
    await raw_redis.hdel(key, HEAD_FIELD)
    assert await store.delete_version("s", 3)
    assert await _check_layout(raw_redis, key_prefix, "s") == 2
    assert await store.load("s") == {"n": 2}
