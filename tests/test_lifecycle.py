"""Connecting, closing, pools, unreachable servers, cancellation, logging."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis.asyncio as aioredis

from recostate import (
    RedisStatePersistence,
    StoreClosedError,
    StoreUnavailableError,
)
from recostate._redis._compat import pool_connection
from recostate.testing import free_port
from tests.conftest import MakeStore, ServerHandle


async def test_lazy_connection_on_first_use(make_store: MakeStore) -> None:
    persistence = make_store()
    assert persistence.closed is False
    await persistence.save("s", 1)
    assert await persistence.load("s") == 1


async def test_async_with_connects_and_closes(redis_server: ServerHandle, key_prefix: str) -> None:
    async with RedisStatePersistence(
        redis_server.url, key_prefix=key_prefix, **redis_server.options
    ) as persistence:
        await persistence.save("s", 1)
        await persistence.delete("s")
    assert persistence.closed
    with pytest.raises(StoreClosedError):
        await persistence.load("s")
    with pytest.raises(StoreClosedError):
        await persistence.save("s", 2)
    with pytest.raises(StoreClosedError):
        persistence.iter_states()
    with pytest.raises(StoreClosedError):
        async with persistence:
            pass
    await persistence.aclose()  # closing twice is harmless


async def test_client_passed_in_is_not_closed(redis_server: ServerHandle, key_prefix: str) -> None:
    client = redis_server.client()
    try:
        async with RedisStatePersistence(client=client, key_prefix=key_prefix) as persistence:
            await persistence.save("s", 1)
            assert await persistence.delete("s")
        assert await client.ping() is True
    finally:
        await client.aclose()


async def test_unreachable_server_raises_store_unavailable_quickly() -> None:
    port = free_port()
    persistence = RedisStatePersistence(
        f"redis://127.0.0.1:{port}/0",
        retries=2,
        retry_backoff=0.01,
        redis_options={"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    )
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        await persistence.save("s", 1)
    assert time.monotonic() - started < 5
    assert info.value.__cause__ is not None
    assert "redis" in type(info.value.__cause__).__module__
    with pytest.raises(StoreUnavailableError):
        await persistence.load("s")
    with pytest.raises(StoreUnavailableError):
        async with persistence:
            pass
    await persistence.aclose()


async def test_full_pool_makes_callers_wait(make_store: MakeStore) -> None:
    persistence = make_store(redis_options={"max_connections": 2, "pool_timeout": 10})
    metas = await asyncio.gather(*(persistence.save(f"s{i}", {"i": i}) for i in range(40)))
    assert {m.version for m in metas} == {1}
    pool = (await persistence.get_stats())["pool"]
    assert pool["max_connections"] == 2
    # On a cluster the limit is per node.
    for figures in pool.get("nodes", {"server": pool}).values():
        assert figures["in_use"] + figures["idle"] <= 2


async def test_full_pool_wait_is_bounded(make_store: MakeStore, on_cluster: bool) -> None:
    if on_cluster:
        pytest.skip("holds a connection of the standalone pool (tests/test_cluster_scaleout.py)")
    persistence = make_store(redis_options={"max_connections": 1, "pool_timeout": 0.2})
    await persistence.save("s", 1)
    client = persistence._executor._get_client()
    assert isinstance(client, aioredis.Redis)
    pool = client.connection_pool
    # Hold the pool's only connection, as a slow caller would.
    conn = await pool_connection(pool)
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailableError, match="pool"):
            await persistence.load("s")
    finally:
        await pool.release(conn)
    assert time.monotonic() - started < 2
    assert await persistence.load("s") == 1


async def test_cancelled_calls_do_not_disturb_later_replies(store: RedisStatePersistence) -> None:
    for i in range(20):
        await store.save(f"s{i}", {"i": i, "pad": "p" * 2000})

    async def load(i: int) -> object:
        return await store.load(f"s{i}")

    for _ in range(5):
        tasks = [asyncio.create_task(load(i)) for i in range(20)]
        await asyncio.sleep(0)
        for task in tasks[::2]:
            task.cancel()
        for i, task in enumerate(tasks):
            try:
                result = await task
            except asyncio.CancelledError:
                continue
            assert result == {"i": i, "pad": "p" * 2000}
    for i in range(20):
        assert await store.load(f"s{i}") == {"i": i, "pad": "p" * 2000}


async def test_debug_logs_name_the_call_but_never_the_state(
    store: RedisStatePersistence, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "top-secret-value-4242"
    with caplog.at_level(logging.DEBUG, logger="recostate"):
        await store.save("logged", {"secret": secret})
        await store.load("logged")
    persistence_records = [r for r in caplog.records if r.name == "recostate.persistence"]
    assert any("save" in r.getMessage() and "logged" in r.getMessage() for r in persistence_records)
    assert any("load" in r.getMessage() for r in persistence_records)
    assert all(secret not in r.getMessage() for r in caplog.records)


async def test_decode_responses_client_is_refused(redis_server: ServerHandle) -> None:
    from recostate import ConfigurationError

    client = redis_server.client(decode_responses=True)
    try:
        with pytest.raises(ConfigurationError):
            RedisStatePersistence(client=client)
    finally:
        await client.aclose()
