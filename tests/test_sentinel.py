"""High availability without a cluster: a Sentinel-managed primary, through a failover.

The module starts one primary, one replica and three ``redis-server --sentinel``
processes on loopback ports (``recostate.testing.EmbeddedSentinelGroup``) and stops them;
the failover test, which leaves the old primary down, runs last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anyio
import pytest

from recostate import ConfigurationError, RedisStatePersistence, StoreUnavailableError
from recostate._redis.sentinel import parse_sentinel_url
from recostate.testing import EmbeddedSentinelGroup, find_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def group() -> Iterator[EmbeddedSentinelGroup]:
    if find_server() is None:
        pytest.skip("no redis-server binary")
    with EmbeddedSentinelGroup() as started:
        yield started


def test_sentinel_url_forms() -> None:
    parsed = parse_sentinel_url("redis+sentinel://u:p%40ss@h1:26380,h2,[::1]:7/svc/3")
    assert parsed.sentinels == (("h1", 26380), ("h2", 26379), ("::1", 7))
    assert (parsed.service_name, parsed.db) == ("svc", 3)
    assert (parsed.username, parsed.password, parsed.ssl) == ("u", "p@ss", False)
    assert parse_sentinel_url("rediss+sentinel://h/svc").ssl is True
    for bad in ("redis+sentinel:///svc", "redis+sentinel://h1:26379", "redis+sentinel://h:x/s"):
        with pytest.raises(ConfigurationError):
            RedisStatePersistence(bad)
    with pytest.raises(ConfigurationError):
        RedisStatePersistence("redis+sentinel://h/svc", cluster=True)
    with pytest.raises(ConfigurationError, match="sentinel"):
        RedisStatePersistence("redis://h:6379/0", redis_options={"sentinel_kwargs": {}})
    with pytest.raises(ConfigurationError):
        RedisStatePersistence("redis+sentinel://h/svc", redis_options={"no_such_option": 1})


async def test_sentinel_pool_makes_callers_wait(group: EmbeddedSentinelGroup) -> None:
    store = RedisStatePersistence(
        group.url,
        key_prefix="sentinel-pool",
        redis_options={"max_connections": 2, "pool_timeout": 5},
    )
    try:
        metas = await asyncio.gather(*(store.save(f"s{i}", i) for i in range(30)))
        assert {m.version for m in metas} == {1}
        pool = (await store.get_stats())["pool"]
        assert pool["in_use"] + pool["idle"] <= 2
    finally:
        await store.aclose()


async def test_sentinel_store_survives_a_primary_failover(group: EmbeddedSentinelGroup) -> None:
    async with RedisStatePersistence(
        group.url, max_versions=1000, key_prefix="sentinel-test"
    ) as store:
        await store.save("first", {"v": 1}, tags=["t"])
        assert await store.load("first") == {"v": 1}
        assert await store.list_states(tag="t") == ["first"]
        old = group.primary_port()
        acked: dict[tuple[str, int], int] = {}
        outages = 0

        async def writer(index: int) -> None:
            nonlocal outages
            for n in range(120):
                while True:
                    try:
                        meta = await store.save(f"w{index}", n)
                        break
                    except StoreUnavailableError:
                        outages += 1
                        await asyncio.sleep(0.05)
                acked[(f"w{index}", meta.version)] = n
                await asyncio.sleep(0.01)

        with anyio.fail_after(90):
            writers = [asyncio.create_task(writer(i)) for i in range(4)]
            await asyncio.sleep(0.2)
            assert acked, "the writers are running"
            await anyio.to_thread.run_sync(group.kill, old)
            promoted = await anyio.to_thread.run_sync(group.wait_promoted, old)
            await asyncio.gather(*writers)
        assert promoted != old
        assert outages > 0
        assert len(acked) == 4 * 120
        for (state_id, version), n in acked.items():
            assert await store.load(state_id, version) == n
        assert await store.load("first") == {"v": 1}
        assert sorted(await store.list_states()) == ["first", "w0", "w1", "w2", "w3"]
        stats = await store.get_stats()
        assert stats["redis_info"]["role"] == "master"
        assert stats["pool"]["max_connections"] == 50
