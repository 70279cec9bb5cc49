"""The redis-py internals recostate relies on (``recostate._redis._compat``), one test each.

CI runs this module on the lowest and the newest redis-py the metadata allows.
A test here that fails names the internal a new redis-py changed: the helper
in ``_compat`` must learn the new form (with the versions that need it) before
the version range in ``pyproject.toml`` may include that release.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import requires, version

import hiredis
import pytest
from packaging.requirements import Requirement
from redis import exceptions as rexc
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.sentinel import Sentinel
from redis.crc import key_slot

from recostate._redis import _compat
from recostate.testing import EmbeddedCluster, EmbeddedRedis, admin_command, find_server
from recostate.testing.resp import text

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    if find_server() is None:
        pytest.skip("no redis-server binary found")
    with EmbeddedRedis() as embedded:
        yield embedded


@pytest.fixture
async def pool(server: EmbeddedRedis) -> AsyncIterator[BlockingConnectionPool]:
    blocking = BlockingConnectionPool(host=server.host, port=server.port, max_connections=1, timeout=0.05)
    try:
        yield blocking
    finally:
        await blocking.disconnect()


@pytest.fixture
async def cluster_client(embedded_cluster: EmbeddedCluster) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(embedded_cluster.url)
    try:
        yield client
    finally:
        await client.aclose()


def test_the_installed_redis_py_is_in_the_declared_range() -> None:
    # CI's runs on the lowest and the newest redis-py prove the range only if
    # what they installed is inside it.
    declared = next(
        Requirement(line)
        for line in requires("recostate") or []
        if Requirement(line).name == "redis" and not Requirement(line).marker
    )
    assert version("redis") in declared.specifier
    assert tuple(int(p) for p in version("redis").split(".")[:3]) == _compat.REDIS_PY_VERSION


# -- one server ------------------------------------------------------------------------------


async def test_pool_connection_borrows_without_a_deprecation_warning(
    pool: BlockingConnectionPool,
) -> None:
    # filterwarnings = error: passing a command name on redis-py >= 5.3 would fail here.
    connection = await _compat.pool_connection(pool)
    try:
        await connection.send_command("PING")
        assert await connection.read_response() in (b"PONG", "PONG")
    finally:
        await pool.release(connection)
    assert _compat._needs_command_name(BlockingConnectionPool) == (
        _compat.REDIS_PY_VERSION < (5, 3)
    )


async def test_pool_use_counts_borrowed_and_idle_connections(
    pool: BlockingConnectionPool,
) -> None:
    assert _compat.pool_use(pool) == (0, 0)
    connection = await _compat.pool_connection(pool)
    assert _compat.pool_use(pool) == (1, 0)
    await pool.release(connection)
    assert _compat.pool_use(pool) == (0, 1)


async def test_a_pool_that_waited_in_vain_is_known_by_its_message(
    pool: BlockingConnectionPool,
) -> None:
    held = await _compat.pool_connection(pool)
    try:
        with pytest.raises(rexc.ConnectionError) as caught:
            await _compat.pool_connection(pool)  # max_connections=1, timeout 0.05 s
        assert _compat.is_pool_exhausted(caught.value)
        assert not _compat.is_pool_exhausted(rexc.ConnectionError("Connection reset by peer"))
    finally:
        await pool.release(held)


async def test_the_hiredis_reader_is_found_and_says_incomplete(server: EmbeddedRedis) -> None:
    connection = Connection(host=server.host, port=server.port)
    await connection.connect()  # type: ignore[no-untyped-call, unused-ignore]
    try:
        reader = _compat.hiredis_reader(connection)
        # None would silently send every reply through the slow path.
        assert isinstance(reader, hiredis.Reader)
        assert (_compat.INCOMPLETE is not False) == (_compat.REDIS_PY_VERSION >= (5, 0, 8))
        assert reader.gets() is _compat.INCOMPLETE  # nothing buffered yet
        await connection.send_command("PING")
        assert await connection.read_response() in (b"PONG", "PONG")
        assert reader.gets() is _compat.INCOMPLETE
    finally:
        await connection.disconnect()


async def test_the_push_handler_is_there_from_redis_py_6_2(server: EmbeddedRedis) -> None:
    connection = Connection(host=server.host, port=server.port)
    await connection.connect()  # type: ignore[no-untyped-call, unused-ignore]
    try:
        handler = _compat.push_handler(connection)
        if _compat.REDIS_PY_VERSION >= (6, 2):
            assert callable(handler)
        else:
            assert handler is None
    finally:
        await connection.disconnect()


async def test_a_write_goes_straight_to_the_open_connections_transport(server: EmbeddedRedis) -> None:
    connection = Connection(host=server.host, port=server.port)
    # Not open: nothing is written, the caller goes through redis-py.
    assert _compat.write_now(connection, b"*1\r\n$4\r\nPING\r\n") is False
    await connection.connect()  # type: ignore[no-untyped-call, unused-ignore]
    try:
        # None would mean the writer moved: every batch would then take the slow path.
        assert _compat.write_now(connection, [b"*1\r\n$4\r\nPING\r\n", b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n"])
        assert await connection.read_response() in (b"PONG", "PONG")
        assert await connection.read_response() == b"hi"
    finally:
        await connection.disconnect()
    assert _compat.write_now(connection, b"*1\r\n$4\r\nPING\r\n") is False


def test_an_attribute_error_inside_redis_py_is_known_as_a_closed_connection() -> None:
    with pytest.raises(AttributeError) as inside:
        key_slot(None)  # type: ignore[arg-type]  # fails inside redis-py's own code
    assert "'NoneType'" in str(inside.value)
    assert _compat.closed_under_call(inside.value)
    with pytest.raises(AttributeError) as outside:
        getattr(None, "find")  # noqa: B009 - the same error, raised here
    assert not _compat.closed_under_call(outside.value)
    assert not _compat.closed_under_call(rexc.ConnectionError("'NoneType'"))


async def test_close_sentinels_closes_every_sentinel_connection(server: EmbeddedRedis) -> None:
    # Any server answers PING: the Sentinel manager's clients only connect here.
    manager = Sentinel([(server.host, server.port)], sentinel_kwargs={"client_name": "sentinel-probe"})  # type: ignore[no-untyped-call, unused-ignore]

    def probes() -> int:
        return text(admin_command(server.port, "CLIENT", "LIST")).count("name=sentinel-probe")

    await manager.sentinels[0].ping()
    assert probes() == 1
    await _compat.close_sentinels(manager)
    for _ in range(100):  # the server sees the close a moment later
        if probes() == 0:
            break
        await asyncio.sleep(0.02)
    assert probes() == 0


async def test_semaphore_free_counts_what_is_left() -> None:
    semaphore = asyncio.Semaphore(3)
    await semaphore.acquire()
    assert _compat.semaphore_free(semaphore) == 2
    semaphore.release()
    assert _compat.semaphore_free(semaphore) == 3


# -- a cluster -------------------------------------------------------------------------------


async def test_the_slot_map_flag_follows_initialize(cluster_client: RedisCluster) -> None:
    assert hasattr(cluster_client, "_initialize_due") == (_compat.REDIS_PY_VERSION >= (8, 2))
    assert _compat.cluster_needs_slot_map(cluster_client)  # a new client has no map yet
    await cluster_client.initialize()
    assert not _compat.cluster_needs_slot_map(cluster_client)
    _compat.reload_slot_map_later(cluster_client)
    assert cluster_client._initialize  # what redis-py's own error paths set
    if _compat.REDIS_PY_VERSION < (8, 2):
        assert _compat.cluster_needs_slot_map(cluster_client)
    await cluster_client.initialize()  # what the next command does (8.2: once due)
    assert not _compat.cluster_needs_slot_map(cluster_client)
    await _compat.reload_slot_map(cluster_client)
    assert cluster_client.get_node_from_key("k") is not None


async def test_learn_moved_updates_the_slot_map(cluster_client: RedisCluster) -> None:
    await cluster_client.initialize()
    slot = key_slot(b"k")
    owner = cluster_client.nodes_manager.get_node_from_slot(slot)
    other = next(node for node in cluster_client.get_primaries() if node.name != owner.name)
    # What a primary answers for a slot it no longer serves.
    await _compat.learn_moved(cluster_client, rexc.MovedError(f"{slot} {other.host}:{other.port}"))
    assert cluster_client.nodes_manager.get_node_from_slot(slot).name == other.name


async def test_node_connections_are_borrowed_returned_and_counted(
    cluster_client: RedisCluster,
) -> None:
    await cluster_client.initialize()
    node = cluster_client.get_primaries()[0]
    before = _compat.node_use(node)
    connection = _compat.node_connection(node)
    in_use, _ = _compat.node_use(node)
    assert in_use == before[0] + 1
    _compat.node_release(node, connection)
    assert _compat.node_use(node)[0] == before[0]
    # The connection went back to the node: the next borrower gets it.
    again = _compat.node_connection(node)
    assert again is connection
    _compat.node_release(node, again)


async def test_node_is_routed_knows_the_clients_own_node_objects(
    cluster_client: RedisCluster,
) -> None:
    await cluster_client.initialize()
    slot = key_slot(b"k")
    routed = cluster_client.nodes_manager.get_node_from_slot(slot)
    assert _compat.node_is_routed(cluster_client, routed)
    for node in cluster_client.get_nodes():
        assert _compat.node_is_routed(cluster_client, node)
    stranger = ClusterNode(routed.host, routed.port)  # same address, another object
    assert not _compat.node_is_routed(cluster_client, stranger)
