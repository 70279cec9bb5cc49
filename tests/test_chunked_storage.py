"""Chunked versions on a real server: what they share, what a save sends, references kept exact.

Runs on every server line and on the cluster. After each operation the
state's stored pieces are audited (``recostate verify``'s check): every piece
sound, every reference count exact, nothing orphaned, nothing dangling.
"""

from __future__ import annotations

import asyncio
import random
import string
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from recostate import IntegrityError, RedisStatePersistence
from recostate.cli import raw
from tests.conftest import MakeStore
from tests.layout import aget_version, aset_version, state_keys

pytestmark = pytest.mark.integration


def message(rng: random.Random, step: int) -> dict[str, Any]:
    words = " ".join("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(200))
    return {"role": rng.choice(["user", "assistant"]), "content": words, "step": step}


def agent_state(steps: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    return {"thread": "t", "step": steps, "messages": [message(rng, i) for i in range(steps)]}


async def audit(store: RedisStatePersistence, state_id: str) -> None:
    problems = await raw.check_pieces(store, state_id)
    assert problems == [], problems


async def sent(store: RedisStatePersistence) -> int:
    return int((await store.get_stats())["store"]["bytes_stored"])


async def test_a_growing_state_shares_its_chunks_and_saves_send_what_changed(
    make_store: MakeStore,
) -> None:
    store = make_store(max_versions=100)
    sizes = []
    for steps in range(1, 41):
        before = await sent(store)
        meta = await store.save("agent", agent_state(steps))
        sizes.append(await sent(store) - before)
        assert meta.size_bytes == len(store.codec.encode_state(agent_state(steps)))
    # Once chunked, each save sends about one message, never the whole state.
    assert max(sizes[10:]) < 6 * 1024 < len(store.codec.encode_state(agent_state(40))) // 5
    for steps in range(1, 41):
        assert await store.load("agent", steps) == agent_state(steps)
    await audit(store, "agent")


async def test_another_client_reads_a_chunked_state_and_writes_after_it(
    make_store: MakeStore,
) -> None:
    first, second = make_store(), make_store()
    await first.save("s", agent_state(20))
    assert await second.load("s") == agent_state(20)
    await second.save("s", agent_state(21))
    assert await first.load("s") == agent_state(21)
    await first.save("s", agent_state(22))
    assert await second.load("s") == agent_state(22)
    await audit(first, "s")


async def test_a_load_of_the_head_a_client_holds_does_not_assemble_it_again(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recostate._codec import reading
    from recostate._codec.manifest import expand as real_expand

    assembled: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> None:
        assembled.append(1)
        real_expand(*args, **kwargs)

    monkeypatch.setattr(reading, "expand", counting)
    writer, reader = make_store(), make_store()
    await writer.save("s", agent_state(20))
    # The writer holds what it wrote: its loads decode those bytes again.
    loaded = await writer.load("s")
    assert loaded == agent_state(20) and assembled == []
    loaded["messages"].clear()  # each load is a new object
    assert await writer.load("s") == agent_state(20) and assembled == []
    # Another client assembles the state once, then holds it.
    assert await reader.load("s") == agent_state(20) and len(assembled) == 1
    assert await reader.load("s") == agent_state(20) and len(assembled) == 1
    # A new head is assembled again, from the pieces it lacks.
    await writer.save("s", agent_state(21))
    assert await reader.load("s") == agent_state(21) and len(assembled) == 2
    assert await reader.load("s", 1) == agent_state(20) and len(assembled) == 3
    await audit(writer, "s")


async def test_a_save_whose_client_memory_is_wrong_is_sent_again_whole(
    make_store: MakeStore,
) -> None:
    writer, other = make_store(max_versions=1), make_store(max_versions=1)
    await writer.save("s", agent_state(20))
    # Another client replaces the state wholesale: the chunks the writer
    # remembers are gone from the server.
    await other.save("s", agent_state(20, seed=99))
    await writer.save("s", agent_state(21))
    assert await other.load("s") == agent_state(21)
    await audit(writer, "s")


async def test_two_clients_creating_a_state_agree_on_one_dictionary(make_store: MakeStore) -> None:
    stores = [make_store() for _ in range(4)]
    await asyncio.gather(*(s.save("s", agent_state(30, seed=i)) for i, s in enumerate(stores)))
    for i, store in enumerate(stores):
        await store.save("s", agent_state(31, seed=i))
    assert await make_store().load("s") == agent_state(31, seed=3)
    await audit(stores[0], "s")


async def test_retention_delete_version_prune_rollback_and_delete_keep_references_exact(
    make_store: MakeStore, raw_redis: aioredis.Redis | RedisCluster, key_prefix: str
) -> None:
    store = make_store(max_versions=5)
    for steps in range(5, 20):
        await store.save("s", agent_state(steps))
        await audit(store, "s")
    assert [m.version for m in await store.list_versions("s")] == [11, 12, 13, 14, 15]
    assert await store.delete_version("s", 13)
    await audit(store, "s")
    assert await store.delete_version("s", 15)  # the head: 14 takes its place
    assert (await store.get_metadata("s")).version == 14  # type: ignore[union-attr]
    await audit(store, "s")
    meta = await store.rollback("s", 11)
    assert meta.rolled_back_from == 11 and await store.load("s") == agent_state(15)
    await audit(store, "s")
    assert await store.prune("s", 1) == 3
    await audit(store, "s")
    assert await store.load("s") == agent_state(15)
    assert await store.delete("s")
    assert [k async for k in raw_redis.scan_iter(match=f"{key_prefix}*")] == []


async def test_every_key_of_a_chunked_state_expires_together(
    make_store: MakeStore, raw_redis: aioredis.Redis | RedisCluster, key_prefix: str
) -> None:
    store = make_store(default_ttl=500)
    await store.save("s", agent_state(25))
    await store.save("s", agent_state(26))
    keys = state_keys(key_prefix, "s").all
    ttls = {key: await raw_redis.pttl(key) for key in keys}
    assert all(490_000 < ttl <= 500_000 for ttl in ttls.values()), ttls  # all six exist
    assert await store.touch("s", None)
    assert {await raw_redis.pttl(key) for key in keys} == {-1}


async def test_whole_and_chunked_versions_coexist_and_any_store_reads_them(
    make_store: MakeStore,
) -> None:
    zlib_store = make_store(compression_type="zlib", max_versions=20)
    for steps in (1, 2, 10, 3, 30):  # whole, whole, chunked, whole, chunked
        await zlib_store.save("s", agent_state(steps))
    lz4_store, plain = make_store(), make_store(chunk_threshold=None)
    for version, steps in enumerate((1, 2, 10, 3, 30), start=1):
        assert await lz4_store.load("s", version) == agent_state(steps)
        assert await plain.load("s", version) == agent_state(steps)
    await plain.save("s", agent_state(31))  # a whole version after chunked ones
    assert await lz4_store.load("s") == agent_state(31)
    await audit(plain, "s")


async def test_a_damaged_piece_is_an_integrity_error_never_wrong_data(
    make_store: MakeStore, raw_redis: aioredis.Redis | RedisCluster, key_prefix: str
) -> None:
    writer = make_store()
    await writer.save("s", agent_state(30))
    pieces_key = state_keys(key_prefix, "s").all[3]
    fields: dict[Any, Any] = await raw_redis.hgetall(pieces_key)
    rng = random.Random(5)
    for field, value in sorted(fields.items()):
        position = rng.randrange(len(value))
        damaged = value[:position] + bytes([value[position] ^ (1 << rng.randrange(8))]) + value[position + 1 :]
        await raw_redis.hset(pieces_key, field, damaged)
        try:
            # A fresh reader fetches every piece (no memory of the good ones).
            outcome: object = await make_store().load("s")
        except IntegrityError as exc:
            outcome = (exc.state_id, exc.version)
        finally:
            await raw_redis.hset(pieces_key, field, value)
        assert outcome in (agent_state(30), ("s", 1))
    # A damaged manifest too.
    frame = await aget_version(raw_redis, key_prefix, "s", 1)
    await aset_version(raw_redis, key_prefix, "s", 1, frame[:-3] + bytes([frame[-3] ^ 4]) + frame[-2:])
    with pytest.raises(IntegrityError):
        await make_store().load("s")
    problems = await raw.check_pieces(writer, "s")
    assert problems == [] or all("piece" in p for p in problems)


async def test_a_signed_store_checks_every_chunk_against_the_signed_manifest(
    make_store: MakeStore, raw_redis: aioredis.Redis | RedisCluster, key_prefix: str
) -> None:
    key = b"s" * 32
    store = make_store(signing_key=key)
    await store.save("s", agent_state(30))
    pieces_key = state_keys(key_prefix, "s").all[3]
    fields: dict[Any, Any] = await raw_redis.hgetall(pieces_key)
    chunks = [f for f, v in fields.items() if len(f) == 16 and v[2] == 3]
    # Two sound chunk frames swapped: each passes its own CRC, not its id.
    await raw_redis.hset(
        pieces_key, mapping={chunks[0]: fields[chunks[1]], chunks[1]: fields[chunks[0]]}
    )
    with pytest.raises(IntegrityError):
        await make_store(signing_key=key).load("s")


async def test_a_large_state_read_in_two_steps_is_whole_or_an_integrity_error(
    make_store: MakeStore, raw_redis: aioredis.Redis | RedisCluster, key_prefix: str
) -> None:
    """Past a few dozen chunks, a load names them and reads them with one HMGET."""
    writer = make_store()
    state = agent_state(120)
    await writer.save("big", state)
    assert await make_store().load("big") == state
    pieces_key = state_keys(key_prefix, "big").all[3]
    fields: dict[Any, Any] = await raw_redis.hgetall(pieces_key)
    chunk = next(f for f, v in fields.items() if len(f) == 16 and v[2] == 3)
    await raw_redis.hdel(pieces_key, chunk)
    with pytest.raises(IntegrityError, match="missing"):
        await make_store().load("big")
    # The writer holds every chunk itself, so it still reads the state...
    assert await writer.load("big") == state
    # ...and verify names the hole.
    assert any("missing" in problem for problem in await raw.check_pieces(writer, "big"))
