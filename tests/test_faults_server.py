"""Faults of the server itself: killed and restarted, loading, asleep, out of memory.

Each test starts its own redis-server (on a free loopback port) because it
kills, slows or reconfigures it. Every call under test is wrapped in a
generous ``asyncio.wait_for``: that bound is the "never hangs" check, not a
timing assertion.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis import exceptions as rexc

from recostate import (
    RecostateError,
    RedisStatePersistence,
    StoreRefusedError,
    StoreUnavailableError,
)
from recostate.testing import EmbeddedRedis, ServerBinary, find_server, find_servers

pytestmark = pytest.mark.integration

# A bound no healthy call comes near; reaching it means a call hung.
HANG = 20.0

# Every server found (Redis 7.0, Redis 6.2, Valkey 8.1 where installed), by name.
BINARIES = {binary.name: binary for binary in find_servers()}
NEWEST = find_server()
needs_server = pytest.mark.skipif(NEWEST is None, reason="no redis-server binary found")


def debug_args(binary: ServerBinary) -> list[str]:
    """Arguments that allow DEBUG: Redis 7 and Valkey refuse it unless told; 6.2 allows it."""
    return ["--enable-debug-command", "yes"] if binary.major >= 7 else []


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    """A redis-server of the newest version found, with DEBUG allowed."""
    if NEWEST is None:
        pytest.skip("no redis-server binary found")
    embedded = EmbeddedRedis(NEWEST, args=debug_args(NEWEST))
    with embedded:
        yield embedded


def fast_store(url: str, **options: Any) -> RedisStatePersistence:
    """A store whose every wait is short, so outages surface quickly."""
    redis_options = {
        "socket_timeout": 1.0,
        "socket_connect_timeout": 0.5,
        "pool_timeout": 2.0,
        **options.pop("redis_options", {}),
    }
    options.setdefault("retries", 2)
    options.setdefault("retry_backoff", 0.02)
    options.setdefault("key_prefix", "faults")
    return RedisStatePersistence(url, redis_options=redis_options, **options)


def assert_typed(exc: BaseException) -> None:
    """A failure callers see must be a recostate error wrapping the low-level one."""
    assert isinstance(exc, RecostateError), f"leaked {type(exc).__name__}: {exc}"
    assert not isinstance(exc, (rexc.RedisError,))


# -- kill -9 and restart ----------------------------------------------------------------------


@pytest.mark.parametrize("binary", list(BINARIES.values()), ids=list(BINARIES))
async def test_kill_9_and_restart_same_store_recovers_and_keeps_acknowledged_saves(
    binary: ServerBinary,
) -> None:
    """Saves acknowledged before a SIGKILL survive it (AOF, fsync always); during the
    outage every call fails with StoreUnavailableError; after the restart on the same
    port the very same store object works again (its scripts are reloaded)."""
    embedded = EmbeddedRedis(binary, args=["--appendonly", "yes", "--appendfsync", "always"])
    with embedded:
        store = fast_store(embedded.url)
        try:
            acknowledged: dict[str, int] = {}
            for i in range(30):
                meta = await asyncio.wait_for(store.save(f"s{i % 5}", {"i": i}), HANG)
                acknowledged[f"s{i % 5}"] = i
                assert meta.version == i // 5 + 1

            embedded.kill()
            outage_errors: list[BaseException] = []
            for i in range(5):
                for call in (store.save(f"s{i}", {"during": "outage"}), store.load(f"s{i}")):
                    with pytest.raises(StoreUnavailableError) as info:
                        await asyncio.wait_for(call, HANG)
                    outage_errors.append(info.value)
            for exc in outage_errors:
                assert_typed(exc)
                assert isinstance(exc.__cause__, (rexc.ConnectionError, OSError, rexc.TimeoutError))

            embedded.start()
            for state_id, i in acknowledged.items():
                assert await asyncio.wait_for(store.load(state_id), HANG) == {"i": i}
                versions = await store.list_versions(state_id)
                assert [m.version for m in versions] == [1, 2, 3, 4, 5, 6]
            meta = await asyncio.wait_for(store.save("s0", {"after": "restart"}), HANG)
            assert meta.version == 7
            assert await store.load("s0") == {"after": "restart"}
        finally:
            await store.aclose()


async def test_kill_9_under_concurrent_writers_loses_no_acknowledged_save() -> None:
    """Writers save without pause while the server is killed and restarted. Every
    save acknowledged before or after the crash is stored at the version it was
    given; each state's versions run from 1 to its head without a gap; the calls
    caught by the outage failed with StoreUnavailableError only."""
    if NEWEST is None:
        pytest.skip("no redis-server binary found")
    embedded = EmbeddedRedis(NEWEST, args=["--appendonly", "yes", "--appendfsync", "always"])
    with embedded:
        store = fast_store(embedded.url, max_versions=100_000)
        acknowledged: dict[str, dict[int, int]] = {f"w{w}": {} for w in range(4)}
        failures: list[BaseException] = []
        stop = asyncio.Event()

        async def writer(state_id: str) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    meta = await asyncio.wait_for(store.save(state_id, n), HANG)
                except StoreUnavailableError as exc:
                    failures.append(exc)
                    await asyncio.sleep(0.01)
                    continue
                acknowledged[state_id][meta.version] = n

        async def crash() -> None:
            await asyncio.sleep(0.3)
            embedded.kill()
            await asyncio.sleep(0.3)
            await asyncio.to_thread(embedded.start)
            await asyncio.sleep(0.3)
            stop.set()

        try:
            await asyncio.wait_for(
                asyncio.gather(crash(), *(writer(s) for s in acknowledged)), HANG * 2
            )
            assert failures, "the outage caught no call: the test proved nothing"
            for exc in failures:
                assert_typed(exc)
            for state_id, saves in acknowledged.items():
                versions = [m.version for m in await store.list_versions(state_id)]
                assert versions == list(range(1, len(versions) + 1)), "a gap in the chain"
                assert max(saves) <= versions[-1]
                for version, n in saves.items():
                    assert await store.load(state_id, version) == n
        finally:
            await store.aclose()


async def test_calls_during_a_long_outage_are_bounded_and_typed(server: EmbeddedRedis) -> None:
    store = fast_store(server.url)
    try:
        await store.save("x", 1)
        server.kill()
        for call in (
            store.save("x", 2),
            store.load("x"),
            store.get_metadata("x"),
            store.list_versions("x"),
            store.list_states(),
            store.delete("x"),
            store.get_stats(),
        ):
            with pytest.raises(StoreUnavailableError) as info:
                await asyncio.wait_for(call, HANG)
            assert_typed(info.value)
        # The pool is not poisoned by the failures: after the restart, calls work.
        server.start()
        assert await asyncio.wait_for(store.load("x"), HANG) is None  # no persistence configured
        assert (await store.save("x", 3)).version == 1
    finally:
        await store.aclose()


# -- LOADING ------------------------------------------------------------------------------------


def _loading_server(embedded: EmbeddedRedis, keys: int) -> None:
    """Fill the server, snapshot it, kill it and restart it slowly loading the snapshot."""
    import redis

    sync = redis.Redis(host=embedded.host, port=embedded.port)
    try:
        sync.execute_command("DEBUG", "POPULATE", keys, "filler", 100)  # type: ignore[no-untyped-call]
        sync.save()
    finally:
        sync.close()
    embedded.kill()
    # A millisecond per key, and answer clients (LOADING) every kilobyte read.
    embedded.extra_args += [
        "--key-load-delay",
        "1000",
        "--loading-process-events-interval-bytes",
        "1024",
    ]
    embedded.start()  # returns once the server answers, which LOADING counts as


async def _is_loading(url: str) -> bool:
    client = aioredis.Redis.from_url(url)
    try:
        await client.ping()
        return False
    except rexc.BusyLoadingError:
        return True
    finally:
        await client.aclose()


async def test_loading_server_is_retried_then_reported_typed(server: EmbeddedRedis) -> None:
    """While the server answers LOADING, a store with few retries gets a typed
    StoreUnavailableError quickly; a patient store rides it out and succeeds."""
    _loading_server(server, keys=1500)  # about 1.5 s of loading
    assert await _is_loading(server.url), "the server was expected to be loading"

    impatient = fast_store(server.url, retries=1)
    patient = fast_store(server.url, retries=30, retry_backoff=0.1)
    try:
        with pytest.raises(StoreUnavailableError) as info:
            await asyncio.wait_for(impatient.save("x", {"a": 1}), HANG)
        assert isinstance(info.value.__cause__, rexc.BusyLoadingError)
        assert "LOADING" in str(info.value) or "loading" in str(info.value).lower()

        meta = await asyncio.wait_for(patient.save("x", {"a": 2}), HANG)
        assert meta.version == 1
        assert not await _is_loading(server.url)
        assert await patient.load("x") == {"a": 2}
        # The impatient save was refused while loading, so it wrote nothing.
        assert [m.version for m in await patient.list_versions("x")] == [1]
    finally:
        await impatient.aclose()
        await patient.aclose()


# -- DEBUG SLEEP ----------------------------------------------------------------------------------


async def _debug_sleep(url: str, seconds: float) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.execute_command("DEBUG", "SLEEP", seconds)  # type: ignore[no-untyped-call]
    finally:
        await client.aclose()


async def test_slow_server_times_out_typed_and_a_lost_save_is_never_doubled(
    server: EmbeddedRedis,
) -> None:
    """A server asleep longer than the socket timeout and the retries: the save
    ends in a typed StoreUnavailableError (never a hang). Its requests, queued in
    the server's socket, may still run when it wakes: they leave at most one version."""
    store = fast_store(server.url, retries=2, redis_options={"socket_timeout": 0.2})
    try:
        await store.save("x", {"n": 0})
        sleeper = asyncio.create_task(_debug_sleep(server.url, 2.0))
        await asyncio.sleep(0.1)  # the server is now asleep
        with pytest.raises(StoreUnavailableError) as info:
            await asyncio.wait_for(store.save("x", {"n": 1}), HANG)
        assert_typed(info.value)
        assert isinstance(info.value.__cause__, (rexc.TimeoutError, TimeoutError))
        await asyncio.wait_for(sleeper, HANG)

        versions = [m.version for m in await asyncio.wait_for(store.list_versions("x"), HANG)]
        assert versions in ([1], [1, 2]), versions  # applied once or not at all
        head = await store.load("x")
        assert head == ({"n": 1} if versions == [1, 2] else {"n": 0})
    finally:
        await store.aclose()


async def test_slow_server_within_the_retries_is_transparent(server: EmbeddedRedis) -> None:
    """A pause shorter than timeout x retries costs time, not an error, and a save
    resent after a timeout is applied once."""
    store = fast_store(
        server.url, retries=8, retry_backoff=0.1, redis_options={"socket_timeout": 0.3}
    )
    try:
        await store.save("x", {"n": 0})
        sleeper = asyncio.create_task(_debug_sleep(server.url, 0.6))
        await asyncio.sleep(0.1)
        meta = await asyncio.wait_for(store.save("x", {"n": 1}), HANG)
        assert await asyncio.wait_for(store.load("x"), HANG) == {"n": 1}
        await sleeper
        assert meta.version == 2
        assert [m.version for m in await store.list_versions("x")] == [1, 2]
    finally:
        await store.aclose()


# -- out of memory (maxmemory, noeviction) ---------------------------------------------------------


@pytest.mark.parametrize("binary", list(BINARIES.values()), ids=list(BINARIES))
async def test_out_of_memory_refusal_is_typed_and_changes_nothing(binary: ServerBinary) -> None:
    with EmbeddedRedis(binary) as server:
        await _check_out_of_memory(server)


async def _check_out_of_memory(server: EmbeddedRedis) -> None:
    store = fast_store(server.url, compression_type="none", max_versions=3)
    raw = aioredis.Redis.from_url(server.url)
    try:
        for i in range(4):
            await store.save("x", {"i": i, "pad": "p" * 1000}, tags=["t"])
        before_versions = await store.list_versions("x")
        before_head = await store.get_metadata("x")
        before_keys = sorted(await raw.keys("faults*"))
        before_hash = await raw.hgetall(sorted(k for k in before_keys if b":s:" in k)[0])

        used = int((await raw.info("memory"))["used_memory"])
        await raw.config_set("maxmemory-policy", "noeviction")
        await raw.config_set("maxmemory", used + 64 * 1024)
        big = os.urandom(512 * 1024)  # does not fit
        refused: list[BaseException] = []
        for call in (
            store.save("x", {"big": big}),
            store.save("x", {"big": big}, expected_version=4),
            store.save("new", {"big": big}),
        ):
            with pytest.raises(StoreRefusedError) as info:
                await asyncio.wait_for(call, HANG)
            refused.append(info.value)
        for exc in refused:
            assert_typed(exc)
            assert "maxmemory" in str(exc)

        # Head, versions, metadata, keys and tag index are as they were.
        assert await store.list_versions("x") == before_versions
        assert await store.get_metadata("x") == before_head
        assert sorted(await raw.keys("faults*")) == before_keys
        assert await raw.hgetall(sorted(k for k in before_keys if b":s:" in k)[0]) == before_hash
        assert await store.load("x") == {"i": 3, "pad": "p" * 1000}
        assert await store.list_states(tag="t") == ["x"]
        assert not await store.exists("new")

        # Reads and deletes still work at the limit; saves work again once memory is freed.
        assert await store.delete_version("x", 2)
        await raw.config_set("maxmemory", 0)
        assert (await store.save("x", {"after": True})).version == 5
    finally:
        await raw.config_set("maxmemory", 0)
        await raw.aclose()
        await store.aclose()
