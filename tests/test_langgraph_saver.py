"""The LangGraph checkpointer beyond LangGraph's conformance suite: layout, atomicity, TTLs, references."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest

pytest.importorskip(
    "langgraph.checkpoint.conformance",
    reason="needs the langgraph extra and langgraph-checkpoint-conformance (pip install 'recostate[dev]')",
)

import redis.asyncio as aioredis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.types import ERROR
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from recostate import IntegrityError, RedisStatePersistence
from recostate._codec.frame import KIND_MANIFEST, KIND_NODE
from recostate._codec.manifest import refs_of_frame
from recostate.contrib.langgraph import AsyncRecostateSaver, RecostateSaver
from recostate.contrib.langgraph import _layout as layout
from recostate.sync import RedisStatePersistence as SyncStore
from tests.conftest import MakeStore, ServerHandle

pytestmark = pytest.mark.integration

Raw = aioredis.Redis | RedisCluster
BIG = "x" * 5000  # large enough to be a shared blob, not inlined


async def put(
    saver: AsyncRecostateSaver,
    thread_id: str,
    values: dict[str, Any],
    versions: dict[str, Any],
    *,
    new: dict[str, Any] | None = None,
    parent: RunnableConfig | None = None,
    ns: str = "",
    **metadata: Any,
) -> RunnableConfig:
    config = generate_config(thread_id, checkpoint_ns=ns)
    if parent is not None:
        config["configurable"]["checkpoint_id"] = parent["configurable"]["checkpoint_id"]
    checkpoint = generate_checkpoint(channel_values=values, channel_versions=versions)
    return await saver.aput(
        config, checkpoint, generate_metadata(**metadata), versions if new is None else new
    )


async def prefix_keys(raw: Raw, prefix: str) -> list[bytes]:
    return sorted({key async for key in raw.scan_iter(match=f"{prefix}*", count=1000)})


async def check_references(raw: Raw, saver: AsyncRecostateSaver, thread_id: str) -> Counter[bytes]:
    """Every stored value and piece is referenced, every reference counted exactly."""
    records_key, _, blobs_key, pieces_key, counts_key = layout.ThreadKeys(
        saver.store.config.key_prefix, thread_id
    ).all
    records = cast(dict[bytes, bytes], await raw.hgetall(records_key))
    expected: Counter[bytes] = Counter()
    for field, value in records.items():
        if field.startswith(b"c"):
            expected.update(layout.parse_record(value).blobs)
    blobs = cast(dict[bytes, bytes], await raw.hgetall(blobs_key))
    stored = {field[1:]: value for field, value in blobs.items() if field.startswith(b"v")}
    counts = {field[1:]: int(value) for field, value in blobs.items() if field.startswith(b"n")}
    assert counts == dict(expected)
    assert set(stored) == set(expected)  # no orphan, nothing dangling
    # The chunk store: each piece counted once per value frame or node naming it.
    pieces = cast(dict[bytes, bytes], await raw.hgetall(pieces_key))
    pieces = {ident: frame for ident, frame in pieces.items() if ident not in (b"d", b"i")}
    named: Counter[bytes] = Counter()
    frames = [value[1 + value[0] :] for value in stored.values()]
    frames += [layout.parse_write(value).frame for f, value in records.items() if f[:1] == b"w"]
    for frame in frames:
        if frame[2] == KIND_MANIFEST:
            named.update(refs_of_frame(frame))
    for frame in pieces.values():
        if frame[2] == KIND_NODE:
            named.update(refs_of_frame(frame))
    piece_counts = cast(dict[bytes, bytes], await raw.hgetall(counts_key))
    assert {ident: int(count) for ident, count in piece_counts.items()} == dict(named)
    assert set(pieces) == set(named)
    return expected


@pytest.fixture
async def saver(store: RedisStatePersistence) -> AsyncRecostateSaver:
    return AsyncRecostateSaver(store)


async def test_every_key_of_a_thread_shares_one_slot_under_the_prefix(
    saver: AsyncRecostateSaver, raw_redis: Raw, key_prefix: str, on_cluster: bool
) -> None:
    threads = ["t{1}:é 🙂", "t{1}:é 🙂 ", "plain"]
    for thread_id in threads:
        first = await put(saver, thread_id, {"a": BIG, "n": 1}, {"a": 1, "n": 1}, run_id="r1")
        await saver.aput_writes(first, [("a", "w"), (ERROR, "boom")], "task-1")
        await put(saver, thread_id, {"a": BIG}, {"a": 1}, ns="sub:task-9", parent=first)
    keys = await prefix_keys(raw_redis, key_prefix)
    by_thread: dict[str, list[bytes]] = {}
    for key in keys:
        assert key.startswith(key_prefix.encode() + b":lg:{")
        owner = next(t for t in threads if key.endswith(b":" + t.encode()))
        by_thread.setdefault(owner, []).append(key)
    assert set(by_thread) == set(threads)
    for thread_id, owned in by_thread.items():
        # Records, index, values, their chunks and the chunks' counts: whatever the history.
        assert len(owned) == 5, owned
        slots = {key_slot(key) for key in owned}
        if on_cluster:
            slots |= {int(await raw_redis.execute_command("CLUSTER KEYSLOT", k)) for k in owned}
        assert len(slots) == 1, (thread_id, slots)
    # The store's own listing never sees checkpointer keys.
    assert await saver.store.list_states() == []


async def test_put_put_writes_and_get_tuple_are_one_command_each(
    saver: AsyncRecostateSaver, raw_redis: Raw, redis_server: ServerHandle
) -> None:
    if redis_server.embedded is None or redis_server.cluster is not None:
        pytest.skip("watches every command of a server only this test uses")
    assert isinstance(raw_redis, aioredis.Redis)
    first = await put(saver, "t", {"a": BIG}, {"a": 1})  # loads the scripts
    await saver.aput_writes(first, [("a", 1)], "task")
    await saver.aget_tuple(first)
    operations: dict[str, Callable[[], Awaitable[Any]]] = {
        "put": lambda: put(saver, "t", {"a": BIG, "b": [1]}, {"a": 2, "b": 1}, parent=first),
        "put_writes": lambda: saver.aput_writes(first, [("a", 2), ("b", 3)], "task-2"),
        "get_tuple": lambda: saver.aget_tuple(generate_config("t")),
    }
    for name, operation in operations.items():
        async with raw_redis.monitor() as monitor:
            await operation()
            await raw_redis.echo(f"end of {name}")
            seen = []  # commands clients sent (not those the scripts ran)
            while True:
                command = await monitor.next_command()
                if command["command"] == f"ECHO end of {name}":
                    marker = (command["client_address"], command["client_port"])
                    break
                if command["client_type"] != "lua":
                    seen.append(command)
        sent = [
            c["command"].split()[0]
            for c in seen
            if (c["client_address"], c["client_port"]) != marker  # this test's own client
        ]
        assert sent == ["EVALSHA"], (name, sent)


async def test_put_writes_sent_twice_is_stored_once(
    saver: AsyncRecostateSaver, raw_redis: Raw, key_prefix: str
) -> None:
    stored = await put(saver, "t", {}, {})
    writes = [("a", {"v": 1}), ("b", "two"), (ERROR, "first error")]
    await saver.aput_writes(stored, writes, "task-1", "path")
    keys_before = await prefix_keys(raw_redis, key_prefix)
    records_key, index_key, *_ = layout.ThreadKeys(key_prefix, "t").all
    sizes = (await raw_redis.hlen(records_key), await raw_redis.zcard(index_key))
    # A retry (the executor resends after a lost reply), and the task run again.
    await saver.aput_writes(stored, writes, "task-1", "path")
    await saver.aput_writes(stored, [("a", {"v": "other"}), ("b", "x")], "task-1", "path")
    assert (await raw_redis.hlen(records_key), await raw_redis.zcard(index_key)) == sizes
    assert await prefix_keys(raw_redis, key_prefix) == keys_before
    tup = await saver.aget_tuple(stored)
    assert tup is not None
    assert tup.pending_writes == [
        ("task-1", ERROR, "first error"),
        ("task-1", "a", {"v": 1}),
        ("task-1", "b", "two"),
    ]
    # A special write replaces the earlier one of its kind, as LangGraph's savers do.
    await saver.aput_writes(stored, [(ERROR, "second error")], "task-1", "path")
    tup = await saver.aget_tuple(stored)
    assert tup is not None and tup.pending_writes is not None
    assert [w for w in tup.pending_writes if w[1] == ERROR] == [("task-1", ERROR, "second error")]
    assert len(tup.pending_writes) == 3


async def test_a_retried_put_counts_its_references_once(
    saver: AsyncRecostateSaver, raw_redis: Raw
) -> None:
    first = await put(saver, "t", {"a": BIG, "b": [1, 2]}, {"a": 1, "b": 1}, run_id="r1")
    config = generate_config("t")
    config["configurable"]["checkpoint_id"] = first["configurable"]["checkpoint_id"]
    again = generate_checkpoint(
        channel_values={"a": BIG, "b": [1, 2]}, channel_versions={"a": 1, "b": 1}
    )
    await saver.aput(config, again, generate_metadata(run_id="r1"), {"a": 1, "b": 1})
    await saver.aput(config, again, generate_metadata(run_id="r2"), {"a": 1, "b": 1})
    counts = await check_references(raw_redis, saver, "t")
    assert sorted(counts.values()) == [2, 2]  # two checkpoints, each counted once
    # The run index follows the overwrite: r1 still has its first checkpoint only.
    await saver.adelete_for_runs(["r1"])
    assert [t.metadata["run_id"] async for t in saver.alist(generate_config("t"))] == ["r2"]
    await check_references(raw_redis, saver, "t")


async def test_ttl_covers_every_key_of_a_thread_on_every_write(
    make_store: MakeStore, raw_redis: Raw, key_prefix: str
) -> None:
    async with make_store(default_ttl=100) as store:
        saver = AsyncRecostateSaver(store)
        first = await put(saver, "t", {"a": BIG, "n": 3}, {"a": 1, "n": 1})
        await saver.aput_writes(first, [("a", "w")], "task")
        keys = await prefix_keys(raw_redis, key_prefix)
        assert len(keys) == 5  # BIG is chunked: records, index, values, chunks, counts
        for key in keys:
            assert 90 <= await raw_redis.ttl(key) <= 100, key
        # Shorten every TTL by hand: the next write of the thread renews them all.
        for key in keys:
            await raw_redis.expire(key, 5)
        await saver.aput_writes(first, [("n", 4)], "task-2")
        for key in keys:
            assert await raw_redis.ttl(key) >= 90, key
        # A copy expires like a thread written in place.
        await saver.acopy_thread("t", "copy")
        for key in await prefix_keys(raw_redis, key_prefix):
            assert 0 < await raw_redis.ttl(key) <= 100, key


async def test_delete_thread_and_prune_delete_leave_no_key(
    saver: AsyncRecostateSaver, raw_redis: Raw, key_prefix: str
) -> None:
    for thread_id in ("a", "b"):
        first = await put(saver, thread_id, {"v": BIG, "s": "s"}, {"v": 1, "s": 1}, run_id="r")
        await saver.aput_writes(first, [("v", "w")], "task")
        await put(saver, thread_id, {"v": BIG + "!"}, {"v": 2}, parent=first, ns="child:1")
    await saver.adelete_thread("a")
    assert all(not key.endswith(b":a") for key in await prefix_keys(raw_redis, key_prefix))
    await saver.aprune(["b"], strategy="delete")
    assert await prefix_keys(raw_redis, key_prefix) == []


async def test_shared_values_are_counted_and_released_exactly(
    saver: AsyncRecostateSaver, raw_redis: Raw
) -> None:
    # "docs" never changes (one value, referenced by every checkpoint);
    # "messages" grows each step (a new version and value each time).
    parent: RunnableConfig | None = None
    configs = []
    for step in range(5):
        messages = [f"message {i} " + "m" * 100 for i in range(step + 1)]
        parent = await put(
            saver,
            "t",
            {"docs": BIG, "messages": messages, "step": step},
            {"docs": 1, "messages": step + 1, "step": step + 1},
            new={"messages": step + 1, "step": step + 1} if step else None,
            parent=parent,
            run_id=f"run-{step % 2}",
            step=step,
        )
        configs.append(parent)
    counts = await check_references(raw_redis, saver, "t")
    assert sorted(counts.values()) == [1, 1, 1, 1, 1, 5]  # "step" is inlined
    for step, config in enumerate(configs):
        tup = await saver.aget_tuple(config)
        assert tup is not None
        assert tup.checkpoint["channel_values"]["docs"] == BIG
        assert len(tup.checkpoint["channel_values"]["messages"]) == step + 1
        assert tup.checkpoint["channel_values"]["step"] == step
    await saver.acopy_thread("t", "copy")
    assert await check_references(raw_redis, saver, "copy") == counts
    await saver.adelete_for_runs(["run-1"])
    assert sorted((await check_references(raw_redis, saver, "t")).values()) == [1, 1, 1, 3]
    await saver.aprune(["t"])
    assert sorted((await check_references(raw_redis, saver, "t")).values()) == [1, 1]
    latest = await saver.aget_tuple(generate_config("t"))
    assert latest is not None and latest.parent_config is None
    assert latest.checkpoint["channel_values"]["docs"] == BIG
    # delete_for_runs reached the copy too (runs span threads); prune did not.
    assert len([t async for t in saver.alist(generate_config("copy"))]) == 3
    await check_references(raw_redis, saver, "copy")


async def test_a_shared_value_gone_from_the_server_is_sent_again(
    saver: AsyncRecostateSaver, raw_redis: Raw, key_prefix: str
) -> None:
    first = await put(saver, "t", {"docs": BIG}, {"docs": 1})
    _, _, blobs_key, *_ = layout.ThreadKeys(key_prefix, "t").all
    await raw_redis.delete(blobs_key)  # lost: evicted, or deleted by hand
    second = await put(saver, "t", {"docs": BIG}, {"docs": 1}, new={}, parent=first)
    tup = await saver.aget_tuple(second)
    assert tup is not None and tup.checkpoint["channel_values"] == {"docs": BIG}


@pytest.mark.parametrize("lost", ["chunks", "counts-and-chunks"])
async def test_chunks_gone_from_the_server_are_sent_again(
    saver: AsyncRecostateSaver, raw_redis: Raw, key_prefix: str, lost: str
) -> None:
    messages = [f"message {i} " + "m" * 1200 for i in range(8)]
    first = await put(saver, "t", {"docs": messages}, {"docs": 1})
    _, _, _, pieces_key, counts_key = layout.ThreadKeys(key_prefix, "t").all
    assert await raw_redis.hlen(pieces_key) > 1
    # This client remembers the chunks as stored; the server lost them.
    await raw_redis.delete(*([pieces_key] if lost == "chunks" else [pieces_key, counts_key]))
    grown = [*messages, "one more " + "m" * 1200]
    second = await put(saver, "t", {"docs": grown}, {"docs": 2}, parent=first)
    tup = await saver.aget_tuple(second)
    assert tup is not None and tup.checkpoint["channel_values"] == {"docs": grown}


async def test_a_growing_history_shares_its_chunks(
    saver: AsyncRecostateSaver, raw_redis: Raw, key_prefix: str
) -> None:
    """Thirty steps of a message list that grows ~1.2 KiB a step cost little more than the last."""
    rng = random.Random(7)
    messages: list[dict[str, str]] = []
    config: RunnableConfig | None = None
    for step in range(30):
        text = "".join(rng.choice("abcdefghij klmnop") for _ in range(1200))
        messages = [*messages, {"role": "user", "content": f"{step}: {text}"}]
        config = await put(
            saver, "t", {"messages": list(messages), "step": step}, {"messages": step + 1, "step": step + 1},
            parent=config,
        )
    keys = layout.ThreadKeys(key_prefix, "t").all
    history = 0
    for key in keys[2:]:
        for value in cast(dict[bytes, bytes], await raw_redis.hgetall(key)).values():
            history += len(value)
    final = len(saver.serde.dumps_typed(messages)[1])
    # Whole values would store sum(1..30) steps' worth: ~15x the final state.
    assert history < 2 * final, (history, final)
    checkpoints = [t async for t in saver.alist(generate_config("t"))]
    assert len(checkpoints) == 30
    assert checkpoints[0].checkpoint["channel_values"]["messages"] == messages
    assert checkpoints[-1].checkpoint["channel_values"]["messages"] == messages[:1]
    assert checkpoints[10].checkpoint["channel_values"]["messages"] == messages[:20]
    await check_references(raw_redis, saver, "t")
    # Pruning to the latest keeps exactly the pieces the latest needs.
    await saver.aprune(["t"])
    await check_references(raw_redis, saver, "t")
    tup = await saver.aget_tuple(generate_config("t"))
    assert tup is not None and tup.checkpoint["channel_values"]["messages"] == messages
    await saver.adelete_thread("t")
    assert await prefix_keys(raw_redis, key_prefix) == []


async def test_a_written_message_is_the_chunk_the_list_holds_next(
    saver: AsyncRecostateSaver, raw_redis: Raw, key_prefix: str
) -> None:
    """A task's pending write and the next checkpoint's message list share the message's bytes."""
    rng = random.Random(3)

    def message(step: int) -> dict[str, str]:
        return {"id": f"m{step}", "content": "".join(rng.choice("abcdefgh ") for _ in range(1200))}

    messages = [message(i) for i in range(6)]
    first = await put(saver, "t", {"messages": messages}, {"messages": 1})
    _, _, _, pieces_key, counts_key = layout.ThreadKeys(key_prefix, "t").all
    before = set(cast(dict[bytes, bytes], await raw_redis.hgetall(pieces_key)))
    new = message(6)
    await saver.aput_writes(first, [("messages", [new])], "task-1")
    written = set(cast(dict[bytes, bytes], await raw_redis.hgetall(pieces_key))) - before
    assert len(written) == 1  # the message, as one chunk
    second = await put(
        saver, "t", {"messages": [*messages, new]}, {"messages": 2}, parent=first
    )
    after = set(cast(dict[bytes, bytes], await raw_redis.hgetall(pieces_key))) - before
    assert written <= after  # the list refers to the chunk the write stored
    (chunk,) = written
    assert int(await raw_redis.hget(counts_key, chunk) or 0) == 2  # the write and the list
    await check_references(raw_redis, saver, "t")
    tup = await saver.aget_tuple(first)
    assert tup is not None and tup.pending_writes == [("task-1", "messages", [new])]
    tup = await saver.aget_tuple(second)
    assert tup is not None and tup.checkpoint["channel_values"]["messages"] == [*messages, new]
    # The write goes with its checkpoint; the list still holds the chunk.
    await saver.aprune(["t"])
    assert int(await raw_redis.hget(counts_key, chunk) or 0) == 1
    await check_references(raw_redis, saver, "t")


async def test_upserted_writes_release_what_they_replace(
    saver: AsyncRecostateSaver, raw_redis: Raw, key_prefix: str
) -> None:
    stored = await put(saver, "t", {}, {})
    first_error = "first " + "e" * 3000
    second_error = "second " + "f" * 3000
    await saver.aput_writes(stored, [(ERROR, first_error)], "task-1")
    await check_references(raw_redis, saver, "t")
    # The same special write twice in one call, and again later: the last one wins.
    await saver.aput_writes(stored, [(ERROR, "x" * 2000), (ERROR, second_error)], "task-1")
    await check_references(raw_redis, saver, "t")
    tup = await saver.aget_tuple(stored)
    assert tup is not None and tup.pending_writes == [("task-1", ERROR, second_error)]
    # An ordinary write sent again keeps the first value and stores nothing new.
    await saver.aput_writes(stored, [("a", "y" * 2000)], "task-2")
    pieces_key = layout.ThreadKeys(key_prefix, "t").all[3]
    held = await raw_redis.hlen(pieces_key)
    await saver.aput_writes(stored, [("a", "z" * 2000)], "task-2")
    assert await raw_redis.hlen(pieces_key) == held
    tup = await saver.aget_tuple(stored)
    assert tup is not None and ("task-2", "a", "y" * 2000) in (tup.pending_writes or [])
    await check_references(raw_redis, saver, "t")


@pytest.mark.parametrize("signed", [False, True])
async def test_a_damaged_chunk_is_an_integrity_error_not_a_wrong_value(
    make_store: MakeStore, raw_redis: Raw, key_prefix: str, signed: bool
) -> None:
    key = b"s" * 32 if signed else None
    async with make_store(signing_key=key) as store:
        saver = AsyncRecostateSaver(store)
        messages = [f"message {i} " + "abcdefgh" * 150 for i in range(12)]
        stored = await put(saver, "t", {"docs": messages}, {"docs": 1})
        tup = await saver.aget_tuple(stored)
        assert tup is not None and tup.checkpoint["channel_values"]["docs"] == messages
        pieces_key = layout.ThreadKeys(key_prefix, "t").all[3]
        fields = cast(dict[bytes, bytes], await raw_redis.hgetall(pieces_key))
        chunks = [f for f, v in fields.items() if len(f) == 16 and v[2] == 3]
        assert len(chunks) >= 2
        if signed:
            # Two sound chunk frames swapped: each passes its own CRC, not its id.
            swapped = {chunks[0]: fields[chunks[1]], chunks[1]: fields[chunks[0]]}
            await raw_redis.hset(pieces_key, mapping=swapped)  # type: ignore[arg-type]
        else:
            frame = fields[chunks[0]]
            await raw_redis.hset(pieces_key, chunks[0], frame[:-1] + bytes([frame[-1] ^ 1]))
        with pytest.raises(IntegrityError):
            await AsyncRecostateSaver(store).aget_tuple(stored)


class _AesGcm:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(12)
        return "aesgcm", nonce + self._aead.encrypt(nonce, plaintext, None)

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        assert ciphername == "aesgcm"
        return self._aead.decrypt(ciphertext[:12], ciphertext[12:], None)


async def test_encrypted_serializer_keeps_contents_unreadable_on_the_server(
    store: RedisStatePersistence, raw_redis: Raw, key_prefix: str
) -> None:
    serde = EncryptedSerializer(_AesGcm(AESGCM.generate_key(bit_length=256)))
    saver = AsyncRecostateSaver(store, serde=serde)
    secret = "the launch code is 0000"
    values = {"notes": secret * 20, "short": secret, "n": 7}
    first = await put(saver, "t", values, {"notes": 1, "short": 1, "n": 1}, note=secret)
    await saver.aput_writes(first, [("notes", secret)], "task")
    for key in await prefix_keys(raw_redis, key_prefix):
        kind = await raw_redis.type(key)
        dump = await (raw_redis.hgetall(key) if kind == b"hash" else raw_redis.zrange(key, 0, -1))
        assert secret.encode() not in repr(dump).encode()
    tup = await saver.aget_tuple(first)
    assert tup is not None
    assert tup.checkpoint["channel_values"] == values
    assert dict(tup.metadata)["note"] == secret
    assert tup.pending_writes == [("task", "notes", secret)]
    # A saver without the key cannot read it.
    with pytest.raises(Exception):  # noqa: B017 - the serializer's own error
        await AsyncRecostateSaver(store).aget_tuple(first)


async def test_list_across_namespaces_and_threads(saver: AsyncRecostateSaver) -> None:
    ids = []
    for ns in ("", "sub:1", "", "sub:2"):
        stored = await put(saver, "t", {}, {}, ns=ns, source="loop")
        ids.append(stored["configurable"]["checkpoint_id"])
    await put(saver, "u", {}, {}, source="input")
    everything = [
        t.checkpoint["id"] async for t in saver.alist({"configurable": {"thread_id": "t"}})
    ]
    assert everything == sorted(ids, reverse=True)
    before: RunnableConfig = {"configurable": {"thread_id": "t", "checkpoint_id": ids[2]}}
    older = [
        t.config["configurable"]["checkpoint_ns"]
        async for t in saver.alist({"configurable": {"thread_id": "t"}}, before=before)
    ]
    assert older == ["sub:1", ""]
    loops = [
        t.config["configurable"]["thread_id"]
        async for t in saver.alist(None, filter={"source": "loop"})
    ]
    assert loops == ["t"] * 4
    assert len([t async for t in saver.alist(None)]) == 5
    assert len([t async for t in saver.alist(None, limit=2)]) == 2
    one = generate_config("t", checkpoint_id=ids[1])
    del one["configurable"]["checkpoint_ns"]
    assert [t.config["configurable"]["checkpoint_ns"] async for t in saver.alist(one)] == ["sub:1"]


async def test_many_checkpoints_list_in_pages(saver: AsyncRecostateSaver) -> None:
    parent: RunnableConfig | None = None
    ids = []
    for step in range(150):  # more than two pages
        parent = await put(saver, "t", {"v": [step]}, {"v": step + 1}, parent=parent, step=step)
        ids.append(parent["configurable"]["checkpoint_id"])
    listed = [t.checkpoint["id"] async for t in saver.alist(generate_config("t"))]
    assert listed == ids[::-1]
    odd = [t.metadata["step"] async for t in saver.alist(generate_config("t"), filter={"step": 7})]
    assert odd == [7]
    assert [t.checkpoint["id"] async for t in saver.alist(generate_config("t"), limit=70)] == ids[
        :-71:-1
    ]


async def test_prune_drops_subgraph_calls_of_pruned_root_checkpoints(
    saver: AsyncRecostateSaver, raw_redis: Raw
) -> None:
    r1 = await put(saver, "t", {"v": BIG}, {"v": 1})
    old_call = await put(
        saver,
        "t",
        {"s": BIG},
        {"s": 1},
        ns="tool:task-1",
        parents={"": r1["configurable"]["checkpoint_id"]},
    )
    r2 = await put(saver, "t", {"v": BIG + "2"}, {"v": 2}, parent=r1)
    new_call = await put(
        saver,
        "t",
        {"s": BIG},
        {"s": 1},
        ns="tool:task-2",
        parents={"": r2["configurable"]["checkpoint_id"]},
    )
    await saver.aprune(["t"])
    left = {
        t.config["configurable"]["checkpoint_ns"]
        async for t in saver.alist({"configurable": {"thread_id": "t"}})
    }
    assert left == {"", "tool:task-2"}
    assert await saver.aget_tuple(old_call) is None
    assert await saver.aget_tuple(new_call) is not None
    await check_references(raw_redis, saver, "t")


async def test_prune_refuses_threads_that_used_a_delta_channel(saver: AsyncRecostateSaver) -> None:
    first = await put(saver, "plain", {}, {})
    await put(saver, "plain", {}, {}, parent=first)
    first = await put(saver, "delta", {}, {})
    await put(saver, "delta", {}, {}, parent=first, counters_since_delta_snapshot={"v": [1, 1]})
    with pytest.raises(NotImplementedError, match="delta"):
        await saver.aprune(["plain", "delta"])
    for thread_id in ("plain", "delta"):  # nothing pruned
        assert len([t async for t in saver.alist(generate_config(thread_id))]) == 2
    with pytest.raises(TypeError):
        await saver.aprune("plain")
    with pytest.raises(ValueError, match="strategy"):
        await saver.aprune(["plain"], strategy="keep_some")


def test_a_record_body_is_compressed_only_when_that_makes_it_smaller() -> None:
    for body in (b"channel_versions " * 60, os.urandom(600), b"", b"x"):
        record = layout.encode_record(
            parent_id="p", run_id="r", root_id="", delta=True, blobs=[b"f1", b"f2"], body=body
        )
        head = layout.parse_record(record)
        assert bytes(head.body) == body
        assert head.parent_id == "p" and head.blobs == [b"f1", b"f2"]
        compressed = b"2:dz" in record
        assert compressed == (len(body) > 100 and body[:7] == b"channel")
        assert len(record) < len(body) if compressed else record.endswith(body)


async def test_checkpoint_records_are_stored_compressed(
    saver: AsyncRecostateSaver, raw_redis: Raw
) -> None:
    config = await put(saver, "t", {"small": "v"}, {"small": 1}, note="note " * 80)
    records_key = layout.ThreadKeys(saver.store.config.key_prefix, "t").all[0]
    records = cast(dict[bytes, bytes], await raw_redis.hgetall(records_key))
    [stored] = [value for field, value in records.items() if field.startswith(b"c")]
    body = layout.parse_record(stored).body
    assert len(stored) < len(body)
    tup = await saver.aget_tuple(config)
    assert tup is not None and tup.metadata["note"] == "note " * 80  # type: ignore[typeddict-item]
    assert tup.checkpoint["channel_values"] == {"small": "v"}


async def test_copy_thread_replaces_the_target(saver: AsyncRecostateSaver, raw_redis: Raw) -> None:
    await put(saver, "target", {"old": BIG}, {"old": 1})
    await put(saver, "source", {"new": BIG + "new"}, {"new": 1})
    await saver.acopy_thread("source", "target")
    tup = await saver.aget_tuple(generate_config("target"))
    assert tup is not None and tup.checkpoint["channel_values"] == {"new": BIG + "new"}
    assert len([t async for t in saver.alist(generate_config("target"))]) == 1
    await check_references(raw_redis, saver, "target")


async def test_async_saver_blocking_methods_from_another_thread(saver: AsyncRecostateSaver) -> None:
    stored = await put(saver, "t", {"a": BIG}, {"a": 1})
    tup = await asyncio.to_thread(saver.get_tuple, stored)
    assert tup is not None and tup.checkpoint["channel_values"] == {"a": BIG}
    listed = await asyncio.to_thread(lambda: list(saver.list(generate_config("t"))))
    assert [t.checkpoint["id"] for t in listed] == [stored["configurable"]["checkpoint_id"]]
    with pytest.raises(asyncio.InvalidStateError):
        saver.get_tuple(stored)


def test_blocking_saver_over_a_blocking_store(redis_server: ServerHandle, key_prefix: str) -> None:
    with SyncStore(redis_server.url, key_prefix=key_prefix, **redis_server.options) as store:
        saver = RecostateSaver(store)
        config = generate_config("t")
        checkpoint = generate_checkpoint(channel_values={"a": BIG}, channel_versions={"a": 1})
        stored = saver.put(config, checkpoint, generate_metadata(), {"a": 1})
        saver.put_writes(stored, [("a", "w")], "task")
        tup = saver.get_tuple(config)
        assert tup is not None
        assert tup.checkpoint["channel_values"] == {"a": BIG}
        assert tup.pending_writes == [("task", "a", "w")]
        assert [t.checkpoint["id"] for t in saver.list(config)] == [checkpoint["id"]]
        saver.copy_thread("t", "t2")
        saver.delete_for_runs(["nothing"])
        saver.prune(["t2"])
        saver.delete_thread("t")
        saver.delete_thread("t2")
        assert saver.get_tuple(config) is None
        assert list(saver.list(None)) == []
    assert store.closed


def test_savers_refuse_the_wrong_kind_of_store(redis_server: ServerHandle) -> None:
    with SyncStore(redis_server.url, **redis_server.options) as store:
        with pytest.raises(TypeError, match="RecostateSaver"):
            AsyncRecostateSaver(store)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="AsyncRecostateSaver"):
            RecostateSaver(store.async_store)  # type: ignore[arg-type]


def test_next_versions_increase_as_strings() -> None:
    saver = AsyncRecostateSaver(RedisStatePersistence("redis://localhost:1/0"))
    versions = [saver.get_next_version(None, None)]
    for _ in range(12):
        versions.append(saver.get_next_version(versions[-1], None))
    assert versions == sorted(versions)
    assert int(versions[-1].split(".")[0]) == 13
    assert saver.get_next_version(4, None).startswith("0000000000000005.")
    # Two forks of one checkpoint never get the same version.
    assert len({saver.get_next_version(versions[0], None) for _ in range(50)}) == 50


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_histories_keep_values_and_references_exact(
    saver: AsyncRecostateSaver, raw_redis: Raw, seed: int
) -> None:
    # A model of what each checkpoint holds; after every operation each kept
    # checkpoint loads exactly and every value is referenced exactly.
    rng = random.Random(seed)
    threads, namespaces, runs = ["a", "b"], ["", "sub:1"], ["r0", "r1", "r2"]
    # (thread, ns) -> {checkpoint id: (values, versions, run)}
    model: dict[tuple[str, str], dict[str, tuple[dict[str, Any], dict[str, str], str]]] = {}

    async def check() -> None:
        for thread_id in threads:
            await check_references(raw_redis, saver, thread_id)
            for ns in namespaces:
                kept = model.get((thread_id, ns), {})
                listed = [
                    t.checkpoint["id"]
                    async for t in saver.alist(generate_config(thread_id, checkpoint_ns=ns))
                ]
                assert listed == sorted(kept, reverse=True)
                for cid, (values, _, _) in kept.items():
                    tup = await saver.aget_tuple(
                        generate_config(thread_id, checkpoint_ns=ns, checkpoint_id=cid)
                    )
                    assert tup is not None and tup.checkpoint["channel_values"] == values

    for step in range(60):
        thread_id, ns = rng.choice(threads), rng.choice(namespaces)
        kept = model.setdefault((thread_id, ns), {})
        action = rng.random()
        if action < 0.6 or not kept:
            parent = rng.choice(sorted(kept)[-2:]) if kept else None  # the head, or a fork
            old_values, old_versions = (kept[parent][0], kept[parent][1]) if parent else ({}, {})
            values: dict[str, Any] = {}
            versions: dict[str, str] = {}
            new: dict[str, str] = {}
            for channel in ("x", "y", "z"):
                roll = rng.random()
                if channel in old_values and roll < 0.5:  # unchanged: shared with the parent
                    values[channel], versions[channel] = old_values[channel], old_versions[channel]
                elif roll < 0.9:
                    values[channel] = f"{channel}{step}" + "v" * 200
                    versions[channel] = new[channel] = saver.get_next_version(
                        old_versions.get(channel), None
                    )
            run = rng.choice(runs)
            stored = await put(
                saver,
                thread_id,
                values,
                versions,
                new=new,
                ns=ns,
                parent=generate_config(thread_id, checkpoint_ns=ns, checkpoint_id=parent)
                if parent
                else None,
                run_id=run,
            )
            kept[stored["configurable"]["checkpoint_id"]] = (values, versions, run)
        elif action < 0.7:
            cid = rng.choice(sorted(kept))
            config = generate_config(thread_id, checkpoint_ns=ns, checkpoint_id=cid)
            await saver.aput_writes(config, [("x", step)], f"task-{step % 3}")
        elif action < 0.8:
            run = rng.choice(runs)
            await saver.adelete_for_runs([run])
            for checkpoints in model.values():
                for cid in [c for c, (_, _, r) in checkpoints.items() if r == run]:
                    del checkpoints[cid]
        elif action < 0.88:
            await saver.aprune([thread_id])
            for space in namespaces:
                checkpoints = model.get((thread_id, space), {})
                for cid in sorted(checkpoints)[:-1]:
                    del checkpoints[cid]
        elif action < 0.95:
            source, target = thread_id, next(t for t in threads if t != thread_id)
            if any(model.get((source, space)) for space in namespaces):
                await saver.acopy_thread(source, target)
                for space in namespaces:
                    model[(target, space)] = dict(model.get((source, space), {}))
        else:
            await saver.adelete_thread(thread_id)
            for space in namespaces:
                model[(thread_id, space)] = {}
        await check()
