"""Faults between the store and the server: killed connections, lost replies,
latency, cancelled callers, an exhausted pool, and a compare-and-set counter
whose history is checked while its connections are being killed.

Each test starts its own redis-server (it kills that server's clients). The
``asyncio.wait_for`` bounds are the "never hangs" check, not timing assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from recostate import (
    RedisStatePersistence,
    StoreUnavailableError,
    VersionConflictError,
)
from recostate._storage.scripts import SAVE
from recostate.testing import EmbeddedRedis, find_server
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.integration

HANG = 30.0


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedRedis]:
    binary = find_server()
    if binary is None:
        pytest.skip("no redis-server binary found")
    with EmbeddedRedis(binary) as embedded:
        yield embedded


@pytest.fixture
async def admin(server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    """A plain client of the test's server, for killing the store's connections."""
    client = aioredis.Redis.from_url(server.url)
    yield client
    await client.aclose()


def make_store(url: str, **options: Any) -> RedisStatePersistence:
    redis_options = {"socket_timeout": 2.0, "socket_connect_timeout": 1.0, "pool_timeout": 5.0}
    redis_options.update(options.pop("redis_options", {}))
    options.setdefault("retries", 10)
    options.setdefault("retry_backoff", 0.005)
    options.setdefault("key_prefix", "net")
    return RedisStatePersistence(url, redis_options=redis_options, **options)


async def kill_clients(admin: aioredis.Redis) -> int:
    """Kill every normal client connection but the admin's own; return how many."""
    killed = await admin.execute_command(  # type: ignore[no-untyped-call]
        "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"
    )
    return int(killed)


@contextlib.asynccontextmanager
async def killing(admin: aioredis.Redis, every: float = 0.01) -> AsyncIterator[Callable[[], int]]:
    """Kill the store's connections every ``every`` seconds while the block runs."""
    total = 0

    async def killer() -> None:
        nonlocal total
        while True:
            total += await kill_clients(admin)
            await asyncio.sleep(every * random.uniform(0.5, 1.5))

    task = asyncio.create_task(killer())
    try:
        yield lambda: total
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- CLIENT KILL during reads and writes ---------------------------------------------------------


# Small requests share connections through the automatic pipeline; requests over
# 512 KiB go alone on a connection of their own. Both paths must hold.
PATHS = pytest.mark.parametrize(
    ("pad", "writers", "rounds"),
    [(b"", 6, 40), (os.urandom(600_000), 2, 8)],
    ids=["pipelined", "large-direct"],
)


@PATHS
async def test_client_kill_during_reads_and_writes_is_transparent(
    server: EmbeddedRedis, admin: aioredis.Redis, pad: bytes, writers: int, rounds: int
) -> None:
    """Reads retry transparently; writes are retried idempotently: every save made
    while connections are killed is applied exactly once, with no self-conflict."""
    # Enough retries that no call runs out of them even on a busy machine, where
    # a reconnect can take longer than the pause between two kills.
    # Whole versions: chunked, the same pad would be sent and read once and
    # then shared, and no request would be large.
    store = make_store(
        server.url,
        max_versions=1000,
        retries=40,
        compression_type="none",
        chunk_threshold=None,
    )
    try:
        async with killing(admin, every=0.02) as killed:

            async def writer(w: int) -> list[int]:
                versions = []
                i = 0
                # ``rounds`` saves at least, and on (bounded) until connections
                # were killed: on a fast machine the rounds can end before the
                # first kill.
                while i < rounds or (killed() < 3 and i < 50 * rounds):
                    state = {"w": w, "i": i, "pad": pad}
                    meta = await asyncio.wait_for(store.save(f"w{w}", state), HANG)
                    versions.append(meta.version)
                    assert await asyncio.wait_for(store.load(f"w{w}"), HANG) == state
                    i += 1
                return versions

            results = await asyncio.gather(*(writer(w) for w in range(writers)))
        assert killed() > 0, "no connection was killed: the test proved nothing"

        for w, versions in enumerate(results):
            # Each save got the next number: none skipped (a doubled write), none reused.
            assert versions == list(range(1, len(versions) + 1))
            stored = await store.list_versions(f"w{w}")
            assert [m.version for m in stored] == versions
            for number in (1, len(versions)):
                found = await store.load(f"w{w}", number)
                assert found == {"w": w, "i": number - 1, "pad": pad}
    finally:
        await store.aclose()


# -- the fault proxy: lost replies, cuts, latency ------------------------------------------------


@PATHS
async def test_save_whose_reply_was_lost_ends_in_exactly_one_version(
    server: EmbeddedRedis, pad: bytes, writers: int, rounds: int
) -> None:
    async with FaultProxy(server.port) as proxy:
        # Whole versions, so that every save of the large case is a large request.
        store = make_store(proxy.url, retries=3, compression_type="none", chunk_threshold=None)
        try:
            assert (await store.save("x", {"n": 0})).version == 1
            for n in range(1, 6):
                proxy.drop_reply_to(SAVE.sha.encode())
                meta = await asyncio.wait_for(store.save("x", {"n": n, "pad": pad}), HANG)
                assert meta.version == n + 1
            assert proxy.dropped_replies == 5
            assert [m.version for m in await store.list_versions("x")] == [1, 2, 3, 4, 5, 6]
            assert await store.load("x") == {"n": 5, "pad": pad}

            # The same through a compare-and-set: the retry is not a conflict with itself.
            proxy.drop_reply_to(SAVE.sha.encode())
            meta = await store.save("x", {"n": 6, "pad": pad}, expected_version=6)
            assert meta.version == 7
            assert proxy.dropped_replies == 6
            assert [m.version for m in await store.list_versions("x")] == list(range(1, 8))
        finally:
            await store.aclose()


async def test_lost_reply_without_retries_is_ambiguous_and_says_so(server: EmbeddedRedis) -> None:
    """With no retries left, a lost reply is a StoreUnavailableError, and the save
    did happen: exactly the 'may or may not have been applied' the docs promise."""
    async with FaultProxy(server.port) as proxy:
        store = make_store(proxy.url, retries=0)
        try:
            await store.save("warm-up", 0)  # the script is loaded: the next EVALSHA runs it
            proxy.drop_reply_to(SAVE.sha.encode())
            with pytest.raises(StoreUnavailableError):
                await asyncio.wait_for(store.save("x", {"n": 1}), HANG)
            assert proxy.dropped_replies == 1
            assert await store.load("x") == {"n": 1}
            # Saving again after an ambiguous failure is a new save, not a duplicate.
            assert (await store.save("x", {"n": 1})).version == 2
        finally:
            await store.aclose()


async def test_cut_connections_during_a_load_loop_are_retried(server: EmbeddedRedis) -> None:
    async with FaultProxy(server.port) as proxy:
        store = make_store(proxy.url, retries=40)
        try:
            await store.save("x", {"payload": "p" * 5000})

            async def cutter() -> None:
                while True:
                    await asyncio.sleep(random.uniform(0.01, 0.03))
                    proxy.cut_all()

            task = asyncio.create_task(cutter())
            try:
                # Loads until the cutter has cut a few times (a load can be
                # quicker than the first cut), bounded in time.
                deadline = asyncio.get_running_loop().time() + 10
                loads = 0
                while (proxy.cuts < 3 or loads < 100) and asyncio.get_running_loop().time() < deadline:
                    state = await asyncio.wait_for(store.load("x"), HANG)
                    assert state == {"payload": "p" * 5000}
                    loads += 1
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            assert proxy.cuts > 0
        finally:
            await store.aclose()


async def test_latency_above_the_socket_timeout_fails_typed_then_recovers(
    server: EmbeddedRedis,
) -> None:
    async with FaultProxy(server.port) as proxy:
        store = make_store(proxy.url, retries=1, redis_options={"socket_timeout": 0.25})
        try:
            await store.save("x", 1)
            proxy.latency = 0.6
            with pytest.raises(StoreUnavailableError):
                await asyncio.wait_for(store.load("x"), HANG)
            proxy.latency = 0.0
            assert await asyncio.wait_for(store.load("x"), HANG) == 1
            # Whatever the timed-out calls left on their connections was thrown away
            # with them: a later call gets its own reply.
            await store.save("y", 2)
            assert await store.load("y") == 2
            assert await store.load("x") == 1
        finally:
            await store.aclose()


async def test_refused_connections_fail_typed(server: EmbeddedRedis) -> None:
    async with FaultProxy(server.port) as proxy:
        store = make_store(proxy.url, retries=2)
        try:
            proxy.refuse = True
            with pytest.raises(StoreUnavailableError):
                await asyncio.wait_for(store.save("x", 1), HANG)
            proxy.refuse = False
            assert (await store.save("x", 1)).version == 1
        finally:
            await store.aclose()


# -- cancellation storms -------------------------------------------------------------------------


async def _cancel_after(coro: Awaitable[Any], delay: float | None) -> None:
    task = asyncio.ensure_future(coro)
    if delay is None:
        await asyncio.sleep(0)  # cancelled right after it started, before any send
    elif delay > 0:
        await asyncio.sleep(delay)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, StoreUnavailableError):
        await task


async def _pool_settles(store: RedisStatePersistence) -> dict[str, Any]:
    for _ in range(200):
        figures = store._executor.pool()
        if figures["in_use"] == 0:
            return figures
        await asyncio.sleep(0.01)
    return store._executor.pool()


@pytest.mark.parametrize("through_proxy", [False, True], ids=["direct", "slow-proxy"])
async def test_cancellation_storm_leaves_replies_and_pool_intact(
    server: EmbeddedRedis, admin: aioredis.Redis, through_proxy: bool
) -> None:
    """Callers cancelled before the send, while awaiting the reply (a slow proxy
    widens that window) and during codec work in a worker thread (a big state,
    offload from 0 bytes): afterwards every call gets its own reply, and the pool
    returns to idle without leaked connections."""
    async with contextlib.AsyncExitStack() as stack:
        url = server.url
        if through_proxy:
            proxy = await stack.enter_async_context(FaultProxy(server.port))
            proxy.latency = 0.002
            url = proxy.url
        store = make_store(url, offload_threshold=0, redis_options={"max_connections": 8})
        stack.push_async_callback(store.aclose)
        big = {"blob": bytes(random.getrandbits(8) for _ in range(200_000))}
        await store.save("seed", big)

        rng = random.Random(7)
        for round_ in range(6):
            storm = []
            for i in range(40):
                delay = rng.choice([None, 0, 0.0005, 0.001, 0.003, 0.01])
                kind = rng.randrange(4)
                call: Awaitable[Any]
                if kind == 0:
                    call = store.save(f"c{i}", {"round": round_, "i": i})
                elif kind == 1:
                    call = store.load("seed")
                elif kind == 2:
                    call = store.save(f"big{i % 3}", big)
                else:
                    call = store.list_versions("seed")
                storm.append(_cancel_after(call, delay))
            await asyncio.wait_for(asyncio.gather(*storm), HANG)

        # Later calls, many at once, each get their own reply.
        async def check(i: int) -> None:
            payload = {"check": i, "pad": "x" * (i * 37 % 3000)}
            meta = await store.save(f"after{i}", payload)
            assert await store.load(f"after{i}") == payload
            assert (await store.get_metadata(f"after{i}")) == meta

        await asyncio.wait_for(asyncio.gather(*(check(i) for i in range(60))), HANG)
        assert await store.load("seed") == big

        figures = await _pool_settles(store)
        assert figures["in_use"] == 0, figures
        assert figures["idle"] <= 8
        clients = await admin.client_list()
        assert len(clients) <= 8 + 1  # the store's pool and the admin client


# -- pool pressure --------------------------------------------------------------------------------


async def test_ten_times_max_connections_callers_all_finish(
    server: EmbeddedRedis, admin: aioredis.Redis
) -> None:
    store = make_store(server.url, redis_options={"max_connections": 4, "pool_timeout": 20.0})
    try:

        async def caller(i: int) -> None:
            for j in range(5):
                await store.save(f"p{i}", {"i": i, "j": j})
                assert await store.load(f"p{i}") == {"i": i, "j": j}

        await asyncio.wait_for(asyncio.gather(*(caller(i) for i in range(40))), HANG)
        for i in range(40):
            assert [m.version for m in await store.list_versions(f"p{i}")] == [1, 2, 3, 4, 5]
        figures = await _pool_settles(store)
        assert figures["max_connections"] == 4
        assert figures["in_use"] == 0
        assert len(await admin.client_list()) <= 4 + 1
    finally:
        await store.aclose()


# -- a compare-and-set counter under connection kills ----------------------------------------------


async def test_compare_and_set_counter_history_under_connection_kills(
    server: EmbeddedRedis, admin: aioredis.Redis
) -> None:
    """Writers increment one counter through expected_version while connections are
    killed. Every acknowledged increment is recorded. The history must show: the
    final value equals the acknowledged increments, every version from 1 to the head
    is stored once, and version k holds the value k (no lost or doubled update)."""
    store = make_store(server.url, max_versions=10_000, retries=40)
    acknowledged: list[tuple[int, int]] = []  # (version, value) of each acknowledged write
    ambiguous = 0
    conflicts = 0
    try:
        assert (await store.save("counter", 1, expected_version=0)).version == 1
        acknowledged.append((1, 1))

        kills: Callable[[], int] = lambda: 0  # noqa: E731 - replaced once the killer runs

        async def writer(increments: int) -> None:
            nonlocal ambiguous, conflicts
            done = 0
            # ``increments`` at least, and on (bounded) until connections were
            # killed: on a fast machine the increments can end before the first kill.
            while done < increments or (kills() < 3 and done < 20 * increments):
                found = await store.load_with_metadata("counter")
                assert found is not None
                value, meta = found
                try:
                    written = await store.save("counter", value + 1, expected_version=meta.version)
                except VersionConflictError:
                    conflicts += 1
                    continue
                except StoreUnavailableError:
                    ambiguous += 1  # may or may not have been applied
                    continue
                acknowledged.append((written.version, value + 1))
                done += 1

        async with killing(admin, every=0.01) as killed:
            kills = killed
            await asyncio.wait_for(asyncio.gather(*(writer(25) for _ in range(6))), HANG * 2)
        assert killed() > 0

        head = await store.load_with_metadata("counter")
        assert head is not None
        final_value, final_meta = head
        versions = await store.list_versions("counter")
        numbers = [m.version for m in versions]
        assert numbers == list(range(1, final_meta.version + 1)), "gap or duplicate in the chain"
        assert final_value == final_meta.version
        for number in random.sample(numbers, min(40, len(numbers))):
            assert await store.load("counter", number) == number
        # Every acknowledged write is in the history, at its own version, once.
        assert len({v for v, _ in acknowledged}) == len(acknowledged)
        for version, value in acknowledged:
            assert version == value
        assert len(acknowledged) == 1 + 6 * 25
        # Nothing acknowledged was lost, nothing was applied twice: the head counts
        # the acknowledged increments, plus those whose outcome the writer could
        # not know (retries spent), if any of them was applied.
        assert len(acknowledged) <= final_value <= len(acknowledged) + ambiguous
    finally:
        await store.aclose()
