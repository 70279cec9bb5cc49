"""Saving and loading states of every kind msgspec encodes, with their metadata."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

import msgspec
import pytest
import redis.asyncio as aioredis

from recostate import (
    CompressionType,
    PayloadTooLargeError,
    RedisStatePersistence,
    SerializationError,
    StateMetadata,
)
from tests.conftest import MakeStore


class Agent(msgspec.Struct):
    name: str
    step: int
    memory: list[str] = []


@dataclasses.dataclass
class Point:
    x: int
    y: int


async def test_save_then_load_returns_equal_state(store: RedisStatePersistence) -> None:
    state = {"a": 1, "b": [1, 2, 3], "c": {"nested": True}, "d": None, "e": 1.5}
    meta = await store.save("s1", state)
    assert meta.version == 1
    assert await store.load("s1") == state


async def test_first_save_metadata_fields(store: RedisStatePersistence) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    meta = await store.save_with_metadata({"k": "v"}, "s1", tags=["a", "b"])
    after = datetime.now(timezone.utc) + timedelta(seconds=1)
    assert isinstance(meta, StateMetadata)
    assert meta.state_id == "s1"
    assert meta.version == 1
    assert before <= meta.created_at <= after
    assert meta.created_at.tzinfo is not None and meta.created_at.utcoffset() == timedelta(0)
    assert meta.updated_at == meta.created_at
    assert meta.size_bytes == len(msgspec.msgpack.encode({"k": "v"}))
    assert meta.stored_bytes > meta.size_bytes  # small: uncompressed, plus the frame
    assert meta.compression_type is CompressionType.NONE
    assert meta.checksum.startswith("crc32:") and len(meta.checksum) == len("crc32:") + 8
    assert meta.tags == ("a", "b")
    assert meta.ttl is None
    assert meta.rolled_back_from is None


async def test_metadata_is_frozen(store: RedisStatePersistence) -> None:
    meta = await store.save("s1", 1)
    with pytest.raises(AttributeError):
        meta.version = 5  # type: ignore[misc]


async def test_load_with_metadata_matches_save(store: RedisStatePersistence) -> None:
    saved = await store.save("s1", {"x": "y" * 5000}, tags=["t"])
    found = await store.load_with_metadata("s1")
    assert found is not None
    state, meta = found
    assert state == {"x": "y" * 5000}
    assert meta == saved


async def test_large_state_is_compressed_with_lz4(store: RedisStatePersistence) -> None:
    state = {"text": "abc" * 10_000}
    meta = await store.save("s1", state)
    assert meta.compression_type is CompressionType.LZ4
    assert meta.stored_bytes < meta.size_bytes / 10
    assert await store.load("s1") == state


@pytest.mark.parametrize("codec", list(CompressionType))
async def test_each_codec_round_trips(make_store: MakeStore, codec: CompressionType) -> None:
    persistence = make_store(compression_type=codec)
    state = {"text": "hello world " * 2000, "n": list(range(100))}
    meta = await persistence.save("s", state)
    expected = codec
    assert meta.compression_type is expected
    assert await persistence.load("s") == state


async def test_compression_type_accepts_its_string_value(make_store: MakeStore) -> None:
    persistence = make_store(compression_type="zlib")
    meta = await persistence.save("s", {"t": "z" * 5000})
    assert meta.compression_type is CompressionType.ZLIB


async def test_store_reads_frames_written_with_another_codec(make_store: MakeStore) -> None:
    writer = make_store(compression_type=CompressionType.LZ4)
    reader = make_store(compression_type=CompressionType.ZLIB)
    none_reader = make_store(compression_type=CompressionType.NONE)
    state = {"t": "q" * 10_000}
    await writer.save("s", state)
    assert await reader.load("s") == state
    assert await none_reader.load("s") == state
    await reader.save("s2", state)
    assert await writer.load("s2") == state


async def test_incompressible_state_is_stored_uncompressed(make_store: MakeStore) -> None:
    import os

    store = make_store(chunk_threshold=None)
    blob = os.urandom(50_000)
    meta = await store.save("s", blob)
    assert meta.compression_type is CompressionType.NONE
    assert meta.stored_bytes < len(blob) + 100
    assert await store.load("s") == blob
    # In chunks, the first few KiB make the state's dictionary, so the chunks
    # that repeat them shrink; the rest is stored as it is.
    chunked = make_store(key_prefix=store.config.key_prefix + "-c")
    assert (await chunked.save("s", blob)).stored_bytes < len(blob) + len(blob) // 10
    assert await chunked.load("s") == blob


async def test_states_of_many_types(store: RedisStatePersistence) -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    ident = uuid.uuid4()
    values: dict[str, object] = {
        "int": 42,
        "negative": -7,
        "float": 3.25,
        "str": "héllo 🌍",
        "bytes": b"\x00\x01\xff",
        "list": [1, "a", None],
        "none": None,
        "bool": True,
        "empty-dict": {},
    }
    for key, value in values.items():
        await store.save(key, value)
        assert await store.load(key) == value, key
    await store.save("dt", when)
    assert await store.load("dt") == when
    await store.save("uuid", ident)
    assert await store.load("uuid") == str(ident)
    assert await store.load("uuid", type=uuid.UUID) == ident


async def test_typed_load_of_struct_and_dataclass(store: RedisStatePersistence) -> None:
    agent = Agent(name="a", step=3, memory=["m1"])
    await store.save("agent", agent)
    assert await store.load("agent", type=Agent) == agent
    assert await store.load("agent") == {"name": "a", "step": 3, "memory": ["m1"]}
    await store.save("point", Point(1, 2))
    assert await store.load("point", type=Point) == Point(1, 2)
    found = await store.load_with_metadata("agent", type=Agent)
    assert found is not None and found[0] == agent


async def test_typed_load_of_mismatching_type_raises_serialization_error(
    store: RedisStatePersistence,
) -> None:
    await store.save("s", {"unrelated": True})
    with pytest.raises(SerializationError):
        await store.load("s", type=Agent)


async def test_load_unknown_state_returns_none(store: RedisStatePersistence) -> None:
    assert await store.load("missing") is None
    assert await store.load_with_metadata("missing") is None
    assert await store.get_metadata("missing") is None
    assert await store.load("missing", 3) is None


async def test_unencodable_state_raises_and_writes_nothing(
    store: RedisStatePersistence, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    class Opaque:
        pass

    with pytest.raises(SerializationError):
        await store.save("s", {"bad": Opaque()})
    with pytest.raises(SerializationError):
        await store.save("s", {"big": 2**70})
    assert not await store.exists("s")
    assert [k async for k in raw_redis.scan_iter(match=f"{key_prefix}*")] == []


async def test_oversize_state_raises_and_writes_nothing(
    make_store: MakeStore, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    persistence = make_store(max_payload_bytes=1000)
    await persistence.save("ok", "x" * 900)
    with pytest.raises(PayloadTooLargeError) as info:
        await persistence.save("s", "x" * 2000)
    assert info.value.limit == 1000 and info.value.size > 1000
    assert not await persistence.exists("s")
    keys = [k async for k in raw_redis.scan_iter(match=f"{key_prefix}*")]
    assert all(b"ok" in k for k in keys)


async def test_big_state_round_trips_through_worker_thread(make_store: MakeStore) -> None:
    persistence = make_store(offload_threshold=1024)
    state = {"rows": [{"i": i, "name": f"row-{i}"} for i in range(50_000)]}
    meta = await persistence.save("big", state)
    assert meta.size_bytes > 1024
    assert await persistence.load("big") == state


async def test_ids_with_special_characters_are_distinct(store: RedisStatePersistence) -> None:
    ids = [
        "plain",
        "with:colon",
        "{braces}",
        "a}b{c",
        "{",
        "}",
        "space here",
        "emoji 🧠",
        "s:x",
        "x:s",
        "v1:x",
        "x" * 1024,
        "\n\t",
        "ünïcødé",
        "*",
        "?[]\\",
    ]
    for number, state_id in enumerate(ids):
        await store.save(state_id, number)
    for number, state_id in enumerate(ids):
        assert await store.load(state_id) == number, state_id
    assert sorted(await store.list_states()) == sorted(ids)


async def test_lone_surrogate_id_round_trips(store: RedisStatePersistence) -> None:
    await store.save("odd\ud800id", 1)
    assert await store.load("odd\ud800id") == 1
    assert "odd\ud800id" in await store.list_states()


async def test_save_short_form_and_long_form_agree(store: RedisStatePersistence) -> None:
    await store.save("a", {"v": 1}, tags=["x"], ttl=None)
    await store.save_with_metadata({"v": 2}, "a", tags=["y"])
    assert await store.load("a") == {"v": 2}
    versions = await store.list_versions("a")
    assert [m.tags for m in versions] == [("x",), ("y",)]


async def test_head_metadata_is_readable_with_hgetall(
    store: RedisStatePersistence, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    await store.save("s", {"a": 1})
    meta = await store.save("s", {"t": "x" * 5000}, tags=["red", "blue"], ttl=500)
    keys = [k async for k in raw_redis.scan_iter(match=f"{key_prefix}:{{*}}:s:*")]
    assert len(keys) == 1
    raw_fields: dict[bytes, bytes] = await raw_redis.hgetall(keys[0])  # type: ignore[assignment]
    fields = {k.decode(): v.decode() for k, v in raw_fields.items()}
    assert fields["state_id"] == "s"
    assert fields["version"] == "2"
    assert fields["updated_at"] == meta.updated_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert fields["created_at"] == meta.created_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert fields["size_bytes"] == str(meta.size_bytes)
    assert fields["stored_bytes"] == str(meta.stored_bytes)
    assert fields["compression_type"] == "lz4"
    assert fields["checksum"] == meta.checksum
    assert fields["tags"] == '["red","blue"]'
    assert fields["ttl"] == "500"
    assert fields["rolled_back_from"] == ""


async def test_lua_iso_timestamps_match_python(raw_redis: aioredis.Redis) -> None:
    from recostate._storage.scripts import common_source

    samples = [0, 951_782_400_123, 4_107_542_399_999, 1_709_164_800_000, 1_735_689_599_999]
    samples += [1_000_000_000_000 + n * 7_777_777_777 for n in range(40)]
    script = (
        common_source()
        + "local out = {} for i, v in ipairs(ARGV) do out[i] = iso(tonumber(v)) end return out"
    )
    got = await raw_redis.eval(script, 0, *samples)
    for ms, text in zip(samples, got, strict=True):
        expected = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
        assert text.decode() == expected.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", ms
