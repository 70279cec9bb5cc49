"""An ACL user limited to ``~<key_prefix>*``, without dangerous commands, runs every operation.

The user gets ``+@all -@dangerous`` (no KEYS, FLUSHALL, FLUSHDB, CONFIG,
DEBUG, CLIENT KILL, MONITOR...) and keys under the store's prefix only. Any key
recostate touched outside its prefix, or any dangerous command it sent, would
fail the test with NOPERM. ``INFO`` is in ``@dangerous`` too: with ``+info``
``get_stats`` reports everything; without it, what ``MEMORY STATS`` and
``HELLO`` give (no client counts).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis import exceptions as rexc

from recostate import RedisStatePersistence, StoreRefusedError
from recostate.testing import EmbeddedRedis, find_servers

pytestmark = pytest.mark.integration

PREFIX = "tenant-a"
BINARIES = {binary.name: binary for binary in find_servers()}


@pytest.fixture(
    scope="module",
    params=list(BINARIES) or ["none"],
    ids=list(BINARIES) or ["none"],
)
def acl_server(request: pytest.FixtureRequest) -> Iterator[EmbeddedRedis]:
    """A server with three users: limited (+info), limited without info, and elsewhere-only."""
    if request.param == "none":
        pytest.skip("no redis-server binary found")
    with EmbeddedRedis(BINARIES[request.param]) as server:
        admin = redis.Redis(host=server.host, port=server.port)
        common = ["on", "resetkeys", "resetchannels", "+@all", "-@dangerous"]
        admin.acl_setuser("app", reset=True)
        admin.execute_command(  # type: ignore[no-untyped-call]
            "ACL", "SETUSER", "app", *common, ">app-pw", f"~{PREFIX}*", "+info"
        )
        admin.execute_command(  # type: ignore[no-untyped-call]
            "ACL", "SETUSER", "noinfo", *common, ">noinfo-pw", f"~{PREFIX}*"
        )
        admin.execute_command(  # type: ignore[no-untyped-call]
            "ACL", "SETUSER", "other", *common, ">other-pw", "~elsewhere*"
        )
        # Keys of someone else, which the limited user must never see or touch.
        admin.set("bystander", "untouched")
        admin.close()
        yield server


def store_as(server: EmbeddedRedis, user: str, password: str) -> RedisStatePersistence:
    return RedisStatePersistence(
        f"redis://{user}:{password}@{server.host}:{server.port}/0",
        key_prefix=PREFIX,
        max_versions=3,
        retries=0,
    )


def test_the_limited_user_really_is_limited(acl_server: EmbeddedRedis) -> None:
    """The control: dangerous commands and foreign keys are refused to this user."""
    client = redis.Redis(
        host=acl_server.host, port=acl_server.port, username="app", password="app-pw"
    )
    try:
        for command in (
            ("KEYS", "*"),
            ("FLUSHALL",),
            ("FLUSHDB",),
            ("CONFIG", "GET", "maxmemory"),
            ("ACL", "LIST"),
            ("CLIENT", "KILL", "TYPE", "normal"),
        ):
            with pytest.raises(rexc.NoPermissionError):
                client.execute_command(*command)  # type: ignore[no-untyped-call]
        with pytest.raises(rexc.NoPermissionError):
            client.get("bystander")
        # Inside a script the refusal is a script error naming the key access.
        with pytest.raises(rexc.ResponseError, match=r"access|NOPERM"):
            client.eval("return redis.call('GET', 'bystander')", 0)
        assert client.set(f"{PREFIX}:probe", 1)
        client.delete(f"{PREFIX}:probe")
    finally:
        client.close()


async def test_every_operation_runs_under_the_prefix_limited_user(
    acl_server: EmbeddedRedis,
) -> None:
    async with store_as(acl_server, "app", "app-pw") as store:
        meta = await store.save("agent:{7} ✓", {"step": 1}, tags=["blue", "green"], ttl=600)
        await store.save_with_metadata({"step": 2}, "agent:{7} ✓", tags=["blue"])
        await store.save("other", [1, 2, 3], expected_version=0, version=5)
        assert await store.load("agent:{7} ✓") == {"step": 2}
        found = await store.load_with_metadata("agent:{7} ✓", 1)
        assert found is not None and found[0] == {"step": 1}
        assert await store.get_metadata("agent:{7} ✓", 1) == meta
        assert [m.version for m in await store.list_versions("agent:{7} ✓")] == [1, 2]
        assert await store.exists("agent:{7} ✓")
        assert sorted(await store.list_states()) == ["agent:{7} ✓", "other"]
        assert [s async for s in store.iter_states(tag="blue")] == ["agent:{7} ✓"]
        assert await store.list_states(tag="green") == []
        assert (await store.rollback("agent:{7} ✓", 1)).rolled_back_from == 1
        assert await store.touch("agent:{7} ✓", ttl=None)
        assert await store.prune("agent:{7} ✓", keep_last=2) == 1
        assert await store.delete_version("agent:{7} ✓", 3)
        stats = await store.get_stats()
        assert stats["redis_info"]["used_memory"] > 0
        assert await store.delete("agent:{7} ✓")
        assert await store.delete("other")
        assert await store.list_states() == []

    admin = redis.Redis(host=acl_server.host, port=acl_server.port)
    try:
        assert admin.get("bystander") == b"untouched"
        assert [k for k in admin.scan_iter() if not k.startswith(PREFIX.encode())] == [b"bystander"]
    finally:
        admin.close()


async def test_without_info_get_stats_reports_what_the_user_may_see(
    acl_server: EmbeddedRedis,
) -> None:
    """INFO is in @dangerous: get_stats falls back on MEMORY STATS and HELLO."""
    async with store_as(acl_server, "noinfo", "noinfo-pw") as store:
        await store.save("s", 1, tags=["t"])
        assert await store.load("s") == 1
        assert await store.list_states(tag="t") == ["s"]
        stats = await store.get_stats()
        info = stats["redis_info"]
        assert info["info_restricted"] is True
        assert isinstance(info["used_memory"], int) and info["used_memory"] > 0
        assert info["redis_version"] == acl_server.server.version
        assert stats["store"]["saves"] == 1
        assert await store.delete("s")


async def test_a_user_without_the_prefix_is_refused_typed_and_nothing_is_written(
    acl_server: EmbeddedRedis,
) -> None:
    store = store_as(acl_server, "other", "other-pw")
    try:
        with pytest.raises(StoreRefusedError) as info:
            await store.save("s", 1)
        assert "NOPERM" in str(info.value) or "permission" in str(info.value).lower()
        with pytest.raises(StoreRefusedError):
            await store.load("s")
    finally:
        await store.aclose()
    admin = redis.Redis(host=acl_server.host, port=acl_server.port)
    try:
        assert list(admin.scan_iter(match=f"{PREFIX}*")) == []
    finally:
        admin.close()


async def test_wrong_password_is_refused_typed(acl_server: EmbeddedRedis) -> None:
    store = store_as(acl_server, "app", "not-the-password")
    try:
        with pytest.raises(StoreRefusedError):
            await store.load("s")
    finally:
        await store.aclose()
