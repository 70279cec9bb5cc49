"""Automatic pipelining (recostate._redis.pipeline) against a real redis-server.

Requests are held "in flight" with ``CLIENT PAUSE``: the server reads them and
answers nothing until the pause ends, so a test can cancel callers or break
the connection while their requests are on it, without racing the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster

from recostate import RedisStatePersistence
from recostate._redis.executor import Executor, RetryPolicy
from recostate._redis.pipeline import AutoPipeline
from recostate.testing import EmbeddedRedis, find_server
from tests.layout import aget_version

pytestmark = pytest.mark.integration

PAUSE_MS = 1500


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    binary = find_server()
    if binary is None:
        pytest.skip("no redis-server binary")
    with EmbeddedRedis(binary) as embedded:
        yield embedded


@pytest.fixture
async def client(server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    redis_client = aioredis.Redis.from_url(server.url)
    await redis_client.flushdb()
    yield redis_client
    await redis_client.aclose()


async def _pause_server(url: str) -> None:
    # Commands sent from now on are read but not run until the pause ends.
    admin = aioredis.Redis.from_url(url)
    try:
        await admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")  # type: ignore[no-untyped-call]
    finally:
        await admin.aclose()


async def _until(condition: object, what: str) -> None:
    for _ in range(500):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"never happened: {what}")


async def _two_connections(pipeline: AutoPipeline) -> None:
    # From idle, the first caller goes out alone and the rest share a batch on
    # a second connection: both are open (their handshakes done) before a
    # test pauses the server, which would hold a new connection's handshake.
    await asyncio.gather(*(pipeline.execute("PING") for _ in range(8)))


def _break(connection: object) -> None:
    writer = getattr(connection, "_writer", None)
    assert writer is not None
    writer.transport.abort()


async def _warm(store: RedisStatePersistence) -> None:
    # The first call of each script on a fresh server is answered NOSCRIPT and
    # resent; concurrent calls open the pipeline's two connections.
    await store.save("warm", 0)
    await asyncio.gather(*(store.load("warm") for _ in range(8)))


def _pipeline_of(store: RedisStatePersistence) -> AutoPipeline:
    current = store._executor._autopipe
    assert current is not None and isinstance(current[2], AutoPipeline)
    return current[2]


async def test_concurrent_calls_share_round_trips(server: EmbeddedRedis) -> None:
    async with RedisStatePersistence(server.url, key_prefix="share") as store:
        await _warm(store)
        pipeline = _pipeline_of(store)
        before = (pipeline.batches, pipeline.requests)
        metas = await asyncio.gather(*(store.save(f"s{i}", {"i": i}) for i in range(64)))
        assert [m.version for m in metas] == [1] * 64
        assert pipeline.requests - before[1] == 64
        assert pipeline.batches - before[0] < 8
        states = await asyncio.gather(*(store.load(f"s{i}") for i in range(64)))
        assert states == [{"i": i} for i in range(64)]


async def test_a_single_caller_goes_out_alone(server: EmbeddedRedis) -> None:
    async with RedisStatePersistence(server.url, key_prefix="alone") as store:
        await _warm(store)
        await store.save("s", 1)
        pipeline = _pipeline_of(store)
        before = (pipeline.batches, pipeline.requests)
        assert await store.load("s") == 1
        assert (pipeline.batches - before[0], pipeline.requests - before[1]) == (1, 1)


async def test_error_reply_belongs_to_its_own_request(client: aioredis.Redis) -> None:
    await client.set("text", b"t")
    await client.hset("hash", "f", b"v")
    pipeline = AutoPipeline(client)
    try:
        results = await asyncio.gather(
            pipeline.execute("GET", "text"),
            pipeline.execute("GET", "hash"),  # WRONGTYPE
            pipeline.execute("HGET", "hash", "f"),
            pipeline.execute("EVALSHA", "0" * 40, 0),  # NOSCRIPT
            pipeline.execute("GET", "text"),
            return_exceptions=True,
        )
    finally:
        await pipeline.aclose()
    assert results[0] == b"t" and results[2] == b"v" and results[4] == b"t"
    assert isinstance(results[1], rexc.ResponseError) and "WRONGTYPE" in str(results[1])
    assert isinstance(results[3], rexc.NoScriptError)


async def test_a_loading_reply_fails_only_its_request(client: aioredis.Redis) -> None:
    # redis-py parses "-LOADING" into BusyLoadingError, a ConnectionError: it is
    # still one request's whole reply, and the ones after it are still coming.
    for i in range(20):
        await client.set(f"k{i}", str(i).encode())
    loading = "return redis.error_reply('LOADING Redis is loading the dataset in memory')"
    pipeline = AutoPipeline(client, lanes=1)
    try:
        for _ in range(3):
            results = await asyncio.gather(
                *(pipeline.execute("GET", f"k{i}") for i in range(10)),
                pipeline.execute("EVAL", loading, 0),
                *(pipeline.execute("GET", f"k{i}") for i in range(10, 20)),
                return_exceptions=True,
            )
            assert isinstance(results[10], rexc.BusyLoadingError)
            assert results[:10] + results[11:] == [str(i).encode() for i in range(20)]
    finally:
        await pipeline.aclose()


async def test_cancelled_callers_never_shift_replies(
    server: EmbeddedRedis, client: aioredis.Redis
) -> None:
    for i in range(40):
        await client.set(f"k{i}", f"value-{i}".encode())
    pipeline = AutoPipeline(client)
    try:
        await _two_connections(pipeline)
        before = pipeline.requests
        await _pause_server(server.url)
        # The first goes out alone (and is cancelled below), the rest in a batch.
        tasks = [asyncio.create_task(pipeline.execute("GET", f"k{i}")) for i in range(40)]
        # Every request written and waiting for its reply.
        await _until(lambda: pipeline.requests - before == 40 and pipeline.queued == 0, "all sent")
        await asyncio.sleep(0.05)
        for task in tasks[::3]:
            task.cancel()
        # Queued behind the paused batch, then answered after it.
        later = [asyncio.create_task(pipeline.execute("GET", f"k{i}")) for i in range(40)]
        done = await asyncio.gather(*tasks, return_exceptions=True)
        for i, result in enumerate(done):
            if i % 3 == 0:
                assert isinstance(result, asyncio.CancelledError)
            else:
                assert result == f"value-{i}".encode()
        assert await asyncio.gather(*later) == [f"value-{i}".encode() for i in range(40)]
    finally:
        await pipeline.aclose()


async def test_a_queued_request_whose_caller_is_cancelled_is_never_sent(
    server: EmbeddedRedis, client: aioredis.Redis
) -> None:
    pipeline = AutoPipeline(client, lanes=1)
    try:
        await _pause_server(server.url)
        first = asyncio.create_task(pipeline.execute("INCR", "counter"))
        await _until(lambda: pipeline.requests == 1, "first batch sent")
        queued = asyncio.create_task(pipeline.execute("INCR", "counter"))
        await _until(lambda: pipeline.queued == 1, "second request queued")
        queued.cancel()
        assert await first == 1
        assert await pipeline.execute("GET", "counter") == b"1"
    finally:
        await pipeline.aclose()


async def test_a_caller_cancelled_alone_leaves_no_reply_behind(
    server: EmbeddedRedis, client: aioredis.Redis
) -> None:
    for i in range(3):
        await client.set(f"k{i}", f"value-{i}".encode())
    pool = client.connection_pool
    pipeline = AutoPipeline(client)
    try:
        await _pause_server(server.url)
        alone = asyncio.create_task(pipeline.execute("GET", "k1"))
        await _until(lambda: pipeline.requests == 1, "sent alone")
        alone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await alone
        # Its reply was never read: the connection it went out on is closed,
        # so the next caller, on whichever connection, reads its own reply.
        assert await pipeline.execute("GET", "k2") == b"value-2"
        assert await pipeline.execute("GET", "k0") == b"value-0"
        await asyncio.sleep(0)
        await _until(lambda: not pool._in_use_connections, "connections given back")
    finally:
        await pipeline.aclose()


async def test_back_to_back_calls_reuse_one_connection(client: aioredis.Redis) -> None:
    await client.set("k", b"v")
    pool = client.connection_pool
    pipeline = AutoPipeline(client)
    try:
        for _ in range(50):
            assert await pipeline.execute("GET", "k") == b"v"
        # Kept between the calls (no pool round per call), given back once idle.
        assert len(pool._in_use_connections) + len(pool._available_connections) == 1
        await _until(lambda: not pool._in_use_connections, "connection given back")
        assert (pipeline.batches, pipeline.requests) == (50, 50)
    finally:
        await pipeline.aclose()
    assert not pool._in_use_connections


async def test_lost_connection_fails_exactly_the_requests_on_it(
    server: EmbeddedRedis, client: aioredis.Redis
) -> None:
    for i in range(20):
        await client.set(f"k{i}", str(i).encode())
    pipeline = AutoPipeline(client, lanes=2)
    try:
        await _two_connections(pipeline)
        before = pipeline.requests
        await _pause_server(server.url)
        # One request alone on one connection, nine in a batch on the other.
        on_wire = [asyncio.create_task(pipeline.execute("GET", f"k{i}")) for i in range(10)]
        await _until(lambda: pipeline.requests - before == 10, "first requests sent")
        connections = list(client.connection_pool._in_use_connections)
        assert len(connections) == 2
        # Both lanes busy: these wait for a connection.
        queued = [asyncio.create_task(pipeline.execute("GET", f"k{i}")) for i in range(10, 20)]
        await _until(lambda: pipeline.queued == 10, "second batch queued")
        # The sockets break under the requests, as when a server or a router drops them.
        for connection in connections:
            _break(connection)
        lost = await asyncio.gather(*on_wire, return_exceptions=True)
        assert all(isinstance(result, rexc.ConnectionError) for result in lost)
        # Each caller raises its own error object.
        assert len({id(result) for result in lost}) == 10
        # The queued requests went out on a fresh connection and got their own replies.
        assert await asyncio.gather(*queued) == [str(i).encode() for i in range(10, 20)]
    finally:
        await pipeline.aclose()


async def test_saves_on_a_lost_connection_are_retried_once_each(
    server: EmbeddedRedis, client: aioredis.Redis
) -> None:
    async with RedisStatePersistence(server.url, key_prefix="lost", retry_backoff=0.01) as store:
        await _warm(store)
        pool = store._executor._get_client().connection_pool  # type: ignore[union-attr]
        pipeline = _pipeline_of(store)
        before = pipeline.requests
        await _pause_server(server.url)
        saves = [asyncio.create_task(store.save(f"s{i}", {"i": i})) for i in range(20)]
        await _until(lambda: pipeline.requests - before == 20, "saves sent")
        for connection in list(pool._in_use_connections):
            _break(connection)
        metas = await asyncio.gather(*saves)
        assert [m.version for m in metas] == [1] * 20
        for i in range(20):
            assert [m.version for m in await store.list_versions(f"s{i}")] == [1]
            assert await store.load(f"s{i}") == {"i": i}


async def test_scripts_flushed_under_load_are_reloaded(
    server: EmbeddedRedis, client: aioredis.Redis
) -> None:
    async with RedisStatePersistence(server.url, key_prefix="noscript") as store:
        await store.save("s0", 0)
        await client.script_flush()
        metas = await asyncio.gather(*(store.save(f"s{i}", i) for i in range(50)))
        assert sorted(m.version for m in metas) == [1] + [1] * 48 + [2]
        assert await asyncio.gather(*(store.load(f"s{i}") for i in range(50))) == list(range(50))


async def test_one_connection_carries_many_concurrent_callers(server: EmbeddedRedis) -> None:
    store = RedisStatePersistence(
        server.url, key_prefix="onepool", redis_options={"max_connections": 1}
    )
    async with store:
        metas = await asyncio.gather(*(store.save(f"s{i}", i) for i in range(200)))
        assert {m.version for m in metas} == {1}
        pool = (await store.get_stats())["pool"]
        assert pool["in_use"] + pool["idle"] == 1


async def test_large_requests_skip_the_pipeline(server: EmbeddedRedis) -> None:
    async with RedisStatePersistence(
        server.url, key_prefix="large", compression_type="none", chunk_threshold=None
    ) as store:
        await store.save("small", 1)
        pipeline = _pipeline_of(store)
        before = pipeline.requests
        big = b"x" * (1024 * 1024)
        await store.save("big", big)
        assert pipeline.requests == before
        assert await store.load("big") == big


async def test_closing_the_store_fails_what_is_in_flight(server: EmbeddedRedis) -> None:
    store = RedisStatePersistence(server.url, key_prefix="closing")
    await store.save("s", 1)
    await asyncio.gather(*(store.load("s") for _ in range(8)))
    await _pause_server(server.url)
    loads = [asyncio.create_task(store.load("s")) for _ in range(5)]
    sent = _pipeline_of(store).requests
    await _until(lambda: _pipeline_of(store).requests - sent >= 5, "loads sent")
    await store.aclose()
    results = await asyncio.gather(*loads, return_exceptions=True)
    assert all(isinstance(result, Exception) for result in results)


def test_cluster_clients_get_a_pipeline_per_node() -> None:
    from recostate._redis.cluster_pipeline import ClusterAutoPipeline

    cluster = RedisCluster(host="127.0.0.1", port=1)
    executor = Executor(lambda: cluster, owns_client=False, retry=RetryPolicy())

    async def check() -> None:
        # Batching per node on a real cluster: tests/test_cluster_scaleout.py.
        assert isinstance(executor._pipeline(cluster), ClusterAutoPipeline)

    asyncio.run(check())


async def test_readable_fields_passed_with_a_save_equal_the_scripts_own(
    server: EmbeddedRedis, client: aioredis.Redis
) -> None:
    from recostate._storage.scripts import common_source

    store = RedisStatePersistence(server.url, key_prefix="fields", default_ttl=600)
    signed = RedisStatePersistence(
        server.url, key_prefix="fields-signed", signing_key={"k1": b"0" * 32}
    )
    async with store, signed:
        cases = [
            (store, "plain", {"x": 1}, ["a/b", "café", "€", 'q"uote']),
            (store, "big", {"pad": "p" * 5000}, []),
            (store, "chunked", {"pad": [f"p{i}" * 300 for i in range(40)]}, ["c"]),
            (signed, "signed", [1, 2, 3], ["t"]),
        ]
        for persistence, state_id, state, tags in cases:
            await persistence.save(state_id, state, tags=tags)
            await persistence.save(state_id, state, tags=tags, ttl=None)
            await persistence.rollback(state_id, 1)
            keys = persistence.storage.keys(state_id)
            stored = await client.hgetall(keys.state)
            frame = await aget_version(client, persistence.config.key_prefix, state_id, 3)
            # What the scripts write when they read the frame header themselves
            # (delete_version, promoting an older version to the head).
            script = common_source() + "return head_fields(3, ARGV[4])"
            parsed = await client.eval(script, len(keys.all), *keys.all, keys.member, b"", b"0", frame)
            expected = {
                bytes(k) if isinstance(k, bytes) else str(k).encode(): (
                    v if isinstance(v, bytes) else str(v).encode()
                )
                for k, v in zip(parsed[::2], parsed[1::2], strict=True)
            }
            assert {k: stored[k] for k in expected} == expected
