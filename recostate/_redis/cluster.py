"""What a Redis Cluster needs beyond one server, on top of redis-py's ``RedisCluster``.

redis-py's :class:`~redis.asyncio.cluster.RedisCluster` follows MOVED and ASK
redirections and waits out TRYAGAIN by itself, and after a connection error or
CLUSTERDOWN it reloads the slot map on the next call, which the executor's
retries give it. What it does not do is done here:

* It has no blocking pool: a node whose ``max_connections`` are all busy
  fails the call at once. :class:`ClusterGate` lets at most
  ``max_connections`` calls be in flight per store, so no node is ever asked
  for more, and makes the others wait, up to the pool timeout.
* A fresh or failed-over client used by many tasks at once loads its map from
  all of them together; :meth:`ClusterGate.ready` lets one task load it while
  the others wait.
* When it reloads its slot map after CLUSTERDOWN (or after many MOVED
  replies), it closes every connection, including those other calls are
  using at that moment; those calls then fail with an ``AttributeError`` from
  inside redis-py. ``_compat.closed_under_call`` recognises them so the executor
  treats them as the connection errors they are (retried, then
  ``StoreUnavailableError``).
* ``SCAN`` is per node. :func:`scan_primaries` scans every primary that
  serves slots, then compares the slot map with the one it started from: when
  slots moved (a failover, a reshard) during the scan, it scans again; when a
  migration is still under way, it scans the nodes receiving slots again. A
  state that moved from an unscanned node to a scanned one is still found.
* ``WAIT`` counts the writes of its own connection: :func:`run_and_wait`
  sends a script and its ``WAIT`` in one batch to the slot's primary.
* Reads of many keys in other slots go in one pipeline, one round trip per
  node (:func:`pipeline_on_node`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from recostate._errors import StoreUnavailableError
from recostate._redis._compat import (
    cluster_needs_slot_map,
    learn_moved,
    node_use,
    reload_slot_map,
    reload_slot_map_later,
    semaphore_free,
)

__all__ = [
    "ClusterGate",
    "cluster_pool_figures",
    "pipeline_on_node",
    "run_and_wait",
    "scan_primaries",
]

T = TypeVar("T")
Call = Callable[[Callable[[Any], Awaitable[T]], str], Awaitable[T]]

#: How many times a scan starts over because the slot map changed under it.
SCAN_ROUNDS = 3


class ClusterGate:
    """At most ``size`` calls in flight on a cluster client; a wait for a slot is bounded.

    Args:
        size: the client's ``max_connections`` (per node, so also a safe total).
        timeout: seconds a call may wait for its turn, or ``None`` for no bound.
    """

    def __init__(self, size: int, timeout: float | None) -> None:
        self.size = size
        self.timeout = timeout
        self._slot: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._init: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self.waiting = 0

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slot is None or self._slot[0] is not loop:
            # A store used from another event loop (the sync facade's) gets its own.
            self._slot = (loop, asyncio.Semaphore(self.size))
        return self._slot[1]

    async def ready(self, client: RedisCluster) -> None:
        """Load the client's slot map, one caller at a time, if it has to be (re)loaded.

        Left to itself, a fresh (or just failed-over) RedisCluster used by many
        tasks at once loads its map and command table from all of them
        together, and their requests get mixed up on shared connections (the
        server then drops them). One task loads; the others wait for it.
        """
        if not cluster_needs_slot_map(client):
            return
        loop = asyncio.get_running_loop()
        if self._init is None or self._init[0] is not loop:
            self._init = (loop, asyncio.Lock())
        async with self._init[1]:
            if cluster_needs_slot_map(client):
                try:
                    await client.initialize()
                except RedisClusterException as exc:
                    # "Redis Cluster cannot be connected": every node is down.
                    raise RedisConnectionError(str(exc)) from exc

    @property
    def in_flight(self) -> int:
        """Calls holding a turn right now."""
        if self._slot is None:
            return 0
        return self.size - semaphore_free(self._slot[1])

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold one of the ``size`` turns for the duration of a call."""
        semaphore = self._semaphore()
        self.waiting += 1
        try:
            with anyio.move_on_after(self.timeout) as scope:
                await semaphore.acquire()
        finally:
            self.waiting -= 1
        if scope.cancelled_caught:
            raise StoreUnavailableError(
                "no Redis connection became free before the pool timeout "
                "(raise redis_options['max_connections'] or the pool timeout)"
            )
        try:
            yield
        finally:
            semaphore.release()


def cluster_pool_figures(client: RedisCluster, gate: ClusterGate | None) -> dict[str, Any]:
    """Return the connection figures of every node of ``client``, and their sums."""
    per_node: dict[str, dict[str, Any]] = {}
    for node in client.get_nodes():
        in_use, idle = node_use(node)
        per_node[node.name] = {
            "role": getattr(node, "server_type", None) or "unknown",
            "max_connections": int(getattr(node, "max_connections", 0) or 0),
            "in_use": in_use,
            "idle": idle,
        }
    limit = int(client.get_connection_kwargs().get("max_connections", 0) or 0)
    if not limit:
        limit = max((n["max_connections"] for n in per_node.values()), default=0)
    return {
        "kind": "cluster",
        "max_connections": limit,
        "max_connections_per_node": limit,
        "in_use": sum(n["in_use"] for n in per_node.values()),
        "idle": sum(n["idle"] for n in per_node.values()),
        "timeout": gate.timeout if gate else None,
        "in_flight": gate.in_flight if gate else 0,
        "waiting": gate.waiting if gate else 0,
        "nodes": per_node,
    }


def _slot_map(reply: Any) -> list[tuple[int, int, str]]:
    """``CLUSTER SLOTS`` as sorted ``(first, last, primary "host:port")`` ranges."""
    ranges = []
    items = reply.items() if isinstance(reply, dict) else ()
    for (first, last), owners in items:
        host, port = owners["primary"][:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        ranges.append((int(first), int(last), f"{host}:{int(port)}"))
    return sorted(ranges)


async def _read_slot_map(client: RedisCluster) -> list[tuple[int, int, str]]:
    return _slot_map(await client.cluster_slots())


async def _primary(client: RedisCluster, name: str) -> Any:
    node = client.get_node(node_name=name)
    if node is None:
        # The slot map names a node this client has not met yet: reload it.
        await reload_slot_map(client)
        node = client.get_node(node_name=name)
    if node is None:
        raise ClusterError(f"the cluster names a primary {name} no client knows yet")
    return node


async def _import_targets(client: RedisCluster) -> list[str]:
    """Return the names of the primaries that slots are being migrated to right now."""
    targets: set[str] = set()
    for node in client.get_primaries():
        view = await client.execute_command("CLUSTER NODES", target_nodes=node)
        by_id = {info["node_id"]: address for address, info in view.items()}
        for info in view.values():
            if "myself" not in info["flags"]:
                continue
            for migration in info["migrations"]:
                if migration["state"] == "migrating" and migration["node_id"] in by_id:
                    targets.add(by_id[migration["node_id"]])
    return sorted(targets)


async def _scan_nodes(
    call: Call[Any], names: list[str], match: bytes, count: int, type_: str | None
) -> AsyncIterator[bytes]:
    for name in names:
        cursor = 0
        while True:

            async def page(client: Any, name: str = name, cursor: int = cursor) -> Any:
                node = await _primary(client, name)
                return await client.scan(
                    cursor, match=match, count=count, _type=type_, target_nodes=node
                )

            cursors, keys = await call(page, "SCAN")
            for key in keys:
                yield key
            cursor = int(next(iter(cursors.values()))) if cursors else 0
            if cursor == 0:
                break


async def scan_primaries(
    call: Call[Any], match: bytes, *, count: int, type_: str | None
) -> AsyncIterator[bytes]:
    """Yield the keys matching ``match`` on every primary (a key may come more than once).

    Each page goes through ``call`` (the executor's retrying round trip). The
    scan is repeated, up to ``SCAN_ROUNDS`` times, while the slot map changes
    under it. A key moves from a slot's old node to its new one, never back,
    and ``MIGRATE`` puts it on the new node before it leaves the old, so a key
    that moved while the scan ran is on a node that receives a slot: when a
    migration is still under way at the end, those nodes are scanned again.
    """
    for round_ in range(1, SCAN_ROUNDS + 1):
        before = await call(_read_slot_map, "CLUSTER SLOTS")
        try:
            names = sorted({owner for _, _, owner in before})
            async for key in _scan_nodes(call, names, match, count, type_):
                yield key
            if await call(_read_slot_map, "CLUSTER SLOTS") != before:
                continue
            importing = await call(_import_targets, "CLUSTER NODES")
            async for key in _scan_nodes(call, importing, match, count, type_):
                yield key
        except StoreUnavailableError:
            # A primary went away mid-scan (a failover): start over on the new map.
            if round_ == SCAN_ROUNDS:
                raise
            continue
        return


def _refresh_after(exc: BaseException, client: RedisCluster) -> None:
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError)):
        reload_slot_map_later(client)


async def pipeline_on_node(client: RedisCluster, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``commands`` (a pipeline, no transaction) grouped per node; replies in order.

    Errors are raised; a connection error makes the client reload its slot map
    before the next call.
    """
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    try:
        return await pipe.execute()
    except BaseException as exc:
        _refresh_after(exc, client)
        raise


async def run_and_wait(
    client: RedisCluster,
    evalsha: tuple[Any, ...],
    key: bytes,
    replicas: int,
    timeout_ms: int,
    *,
    source: str | bytes,
) -> tuple[Any, Any]:
    """Send ``EVALSHA`` and ``WAIT`` in one batch on one connection of the key's primary.

    ``WAIT`` counts the acknowledgements of the writes made on its own
    connection, so both go to the node that serves ``key`` in one pipeline
    (redis-py sends a node's share of a pipeline on one connection). A
    redirection means the script did not run there: it is raised as a
    retryable ``ClusterError`` (after the slot map learnt the move) rather
    than followed, which would run the script on another connection. A node
    that does not know the script (a promoted replica, a restarted node) is
    given it (``source``) and the batch is sent once more: loading it on the
    primaries the client knows may miss the very node that serves the key
    while the client's map is still catching up with a failover.
    Returns the script's reply (or its error) and ``WAIT``'s.
    """
    if cluster_needs_slot_map(client):
        await client.initialize()
    node = client.get_node_from_key(key)  # type: ignore[arg-type]  # bytes are encoded as is
    if node is None:
        raise ClusterError("no primary is known for the state's slot")
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        pipe.execute_command(*evalsha, target_nodes=node)
        pipe.execute_command("WAIT", replicas, timeout_ms, target_nodes=node)
        try:
            reply, acked = await pipe.execute(raise_on_error=False, allow_redirections=False)
            if isinstance(reply, NoScriptError) and attempt == 0:
                await client.execute_command("SCRIPT LOAD", source, target_nodes=node)
                continue
        except BaseException as exc:
            _refresh_after(exc, client)
            raise
        break
    if isinstance(reply, (MovedError, AskError, TryAgainError)):
        if isinstance(reply, MovedError):
            await learn_moved(client, reply)
        raise ClusterError(f"the state's slot is moving ({type(reply).__name__})") from reply
    if isinstance(reply, (RedisConnectionError, RedisTimeoutError)):
        _refresh_after(reply, client)
    return reply, acked
