"""``wait_for_replicas=N``: WAIT after each write, against a replica these tests start.

What it promises: when a write returns, at least N replicas had received it
(Redis ``WAIT``), so a load from one of them sees it. When fewer acknowledge
within ``wait_timeout``, the write was still applied on the primary and the
call raises ``ReplicationError`` (a ``StoreUnavailableError``) naming the version.
What it does not promise: that replicas wrote it to disk, or that a failover
keeps it (Redis replication stays asynchronous; WAIT only reports).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from recostate import (
    ConfigurationError,
    RedisStatePersistence,
    ReplicationError,
    StoreUnavailableError,
    VersionConflictError,
)
from recostate.testing import EmbeddedRedis, find_server

pytestmark = pytest.mark.integration

HANG = 20.0


@dataclass
class Pair:
    primary: EmbeddedRedis
    replica: EmbeddedRedis


def _wait_linked(primary: EmbeddedRedis, replica: EmbeddedRedis, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    p = redis.Redis(host=primary.host, port=primary.port)
    r = redis.Redis(host=replica.host, port=replica.port)
    try:
        while time.monotonic() < deadline:
            if r.info("replication").get("master_link_status") == "up":
                # Linked and past its first sync: a write is acknowledged.
                p.set("repl-warm-up", 1)
                if p.wait(1, 2000) >= 1:
                    p.delete("repl-warm-up")
                    return
            time.sleep(0.05)
        raise RuntimeError("the replica did not link to the primary in time")
    finally:
        p.close()
        r.close()


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    binary = find_server()
    if binary is None:
        pytest.skip("no redis-server binary found")
    # No delay before the first full sync (Redis 7 waits 5 s by default for more replicas).
    with EmbeddedRedis(binary, args=["--repl-diskless-sync-delay", "0"]) as primary:
        replica = EmbeddedRedis(binary, args=["--replicaof", primary.host, str(primary.port)])
        with replica:
            _wait_linked(primary, replica)
            yield Pair(primary, replica)


def durable_store(
    url: str, replicas: int, *, wait_timeout: float = 0.3, **options: object
) -> RedisStatePersistence:
    return RedisStatePersistence(
        url,
        key_prefix="repl",
        wait_for_replicas=replicas,
        wait_timeout=wait_timeout,
        retries=1,
        **options,  # type: ignore[arg-type]
    )


async def test_every_acknowledged_save_is_already_on_the_replica(pair: Pair) -> None:
    # WAIT returns as soon as the replica acknowledges; the timeout only
    # matters on a machine too busy to answer quickly.
    store = durable_store(pair.primary.url, 1, wait_timeout=5.0)
    reader = RedisStatePersistence(pair.replica.url, key_prefix="repl")
    try:
        for n in range(1, 21):
            meta = await asyncio.wait_for(store.save("s", {"n": n}, tags=["t"]), HANG)
            # No sleep, no polling: WAIT returned, so the replica has this version.
            assert await reader.load("s") == {"n": n}
            assert (await reader.get_metadata("s")) == meta
        assert (await store.rollback("s", 15)).version == 21
        assert await reader.load("s") == {"n": 15}
        assert await store.prune("s", 2) == 8  # max_versions 10 kept 12..21; keep 2
        assert [m.version for m in await reader.list_versions("s")] == [20, 21]
        assert await store.touch("s", 600)
        assert await store.delete_version("s", 21)
        assert await reader.load("s") == {"n": 20}
        assert await store.delete("s")
        assert not await reader.exists("s")
    finally:
        await store.aclose()
        await reader.aclose()


async def test_too_few_replicas_raise_replication_error_after_applying(pair: Pair) -> None:
    store = durable_store(pair.primary.url, 2)  # only one replica exists
    try:
        with pytest.raises(ReplicationError) as info:
            await asyncio.wait_for(store.save("few", {"n": 1}), HANG)
        error = info.value
        assert isinstance(error, StoreUnavailableError)
        assert (error.required, error.acknowledged, error.version) == (2, 1, 1)
        assert error.state_id == "few"
        # An applied write is counted, like any other.
        assert (await store.get_stats())["store"]["saves"] == 1
        # Applied on the primary (and here on the one replica), exactly once.
        plain = RedisStatePersistence(pair.primary.url, key_prefix="repl")
        try:
            assert await plain.load("few") == {"n": 1}
            assert [m.version for m in await plain.list_versions("few")] == [1]
            with pytest.raises(ReplicationError) as deleted:
                await store.delete("few")
            assert deleted.value.version is None
            assert not await plain.exists("few")
        finally:
            await plain.aclose()
    finally:
        await store.aclose()


async def test_a_conflict_is_still_a_conflict_with_wait(pair: Pair) -> None:
    store = durable_store(pair.primary.url, 5)
    try:
        with pytest.raises(ReplicationError):
            await store.save("cas", 1, expected_version=0)
        with pytest.raises(VersionConflictError):
            await store.save("cas", 2, expected_version=0)
    finally:
        plain = RedisStatePersistence(pair.primary.url, key_prefix="repl")
        await plain.delete("cas")
        await plain.aclose()
        await store.aclose()


async def test_wait_survives_a_script_cache_flush(pair: Pair) -> None:
    """The pipeline of EVALSHA and WAIT reloads a script the server forgot."""
    store = durable_store(pair.primary.url, 1, wait_timeout=5.0)
    admin = redis.Redis(host=pair.primary.host, port=pair.primary.port)
    try:
        await store.save("flush", 1)
        admin.script_flush()
        assert (await asyncio.wait_for(store.save("flush", 2), HANG)).version == 2
        assert await store.delete("flush")
    finally:
        admin.close()
        await store.aclose()


def test_options_are_checked_at_construction() -> None:
    for bad in (-1, True, 1.5, "2"):
        with pytest.raises(ConfigurationError):
            RedisStatePersistence("redis://127.0.0.1:1/0", wait_for_replicas=bad)  # type: ignore[arg-type]
    for bad_timeout in (0, -1, float("nan"), float("inf"), "1", True):
        with pytest.raises(ConfigurationError):
            RedisStatePersistence(
                "redis://127.0.0.1:1/0",
                wait_for_replicas=1,
                wait_timeout=bad_timeout,  # type: ignore[arg-type]
            )
