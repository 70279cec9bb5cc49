"""Automatic pipelining on a Redis Cluster: one :class:`AutoPipeline` per primary.

Concurrent calls of a cluster store are grouped by the node that serves
their key's slot, and each node's share is batched on that node's own
connections exactly as on one server (``recostate._redis.pipeline``). The
slot map is the one the cluster client keeps.

Anything unusual leaves the fast path for the cluster client's own
``execute_command``, which follows redirections and reloads the map:

* a command whose key is not known here, or a client whose map must be
  reloaded first, goes there at once;
* a ``MOVED``, ``ASK`` or ``TRYAGAIN`` reply (the command did not run) is sent
  again there, which follows the redirection and learns the new owner;
* a connection error is raised to the executor (which retries it: every
  command sent this way is idempotent) after the client is told to reload its
  map, since the node may be gone.
"""

from __future__ import annotations

from typing import Any

from redis import exceptions as rexc
from redis.asyncio.cluster import ClusterNode, RedisCluster

from recostate._redis._compat import (
    cluster_needs_slot_map,
    node_connection,
    node_is_routed,
    node_release,
    reload_slot_map_later,
)
from recostate._redis.pipeline import AutoPipeline

__all__ = ["ClusterAutoPipeline"]

# Commands recostate sends through the pipeline whose first argument is the key.
_KEY_FIRST = frozenset({"EXISTS", "HGET", "SADD", "SREM", "SSCAN", "GET", "SET", "PTTL"})
_SCRIPTS = frozenset({"EVALSHA", "EVAL"})


def _key(args: tuple[Any, ...]) -> Any:
    name = args[0].upper() if isinstance(args[0], str) else args[0].decode().upper()
    if name in _SCRIPTS:
        return args[3] if len(args) > 3 and int(args[2]) > 0 else None
    if name in _KEY_FIRST and len(args) > 1:
        return args[1]
    return None


class _NodePool:
    """The connection-pool face of a cluster node, as :class:`AutoPipeline` uses it."""

    def __init__(self, node: ClusterNode) -> None:
        self._node = node

    async def get_connection(self) -> Any:
        # Fails at once (MaxConnectionsError) when the node's connections are
        # all busy; the executor's gate keeps that from happening.
        return node_connection(self._node)

    async def release(self, connection: Any) -> None:
        node_release(self._node, connection)


class _NodeClient:
    """What :class:`AutoPipeline` needs of a client: a pool and the reply parsers."""

    def __init__(self, node: ClusterNode) -> None:
        self.connection_pool = _NodePool(node)
        self.response_callbacks = node.response_callbacks


class ClusterAutoPipeline:
    """Batches the commands of concurrent callers per primary of a cluster client."""

    def __init__(self, client: RedisCluster) -> None:
        self._client = client
        self._pipes: dict[str, tuple[ClusterNode, AutoPipeline]] = {}
        self._closed = False

    @property
    def batches(self) -> int:
        """Batches sent so far, on every node."""
        return sum(pipe.batches for _, pipe in self._pipes.values())

    @property
    def requests(self) -> int:
        """Requests sent in those batches."""
        return sum(pipe.requests for _, pipe in self._pipes.values())

    async def _pipe_for(self, node: ClusterNode) -> AutoPipeline:
        held = self._pipes.get(node.name)
        if held is not None and held[0] is node:
            return held[1]
        pipe = AutoPipeline(_NodeClient(node))  # type: ignore[arg-type]
        # In place before the first await, so that concurrent callers share it.
        self._pipes[node.name] = (node, pipe)
        if held is not None:
            # The client replaced the node object (its map was reloaded).
            await self._retire(*held)
        return pipe

    async def execute(self, *args: Any) -> Any:
        """Send one command in the next batch to its key's node; return its parsed reply."""
        client = self._client
        key = None if self._closed or cluster_needs_slot_map(client) else _key(args)
        if key is None:
            return await client.execute_command(*args)
        try:
            node = client.nodes_manager.get_node_from_slot(client.keyslot(key))
        except rexc.RedisClusterException:
            return await client.execute_command(*args)
        pipe = await self._pipe_for(node)
        try:
            return await pipe.execute(*args)
        except (rexc.MovedError, rexc.AskError, rexc.TryAgainError):
            # Not run there: the client follows the redirection and learns it.
            return await client.execute_command(*args)
        except (rexc.ConnectionError, rexc.TimeoutError, OSError):
            reload_slot_map_later(client)
            raise
        except AttributeError as exc:
            # The cluster client closed this node's connections under the batch.
            reload_slot_map_later(client)
            raise rexc.ConnectionError("connection closed during the call") from exc

    async def _retire(self, node: ClusterNode, pipe: AutoPipeline) -> None:
        await pipe.aclose()
        if not node_is_routed(self._client, node):
            # The client dropped this node object when it reloaded its map and
            # closed its connections then; those this pipeline went on using
            # (a send reconnects) would stay open on an object nobody closes.
            await node.disconnect()

    async def aclose(self) -> None:
        """Stop every node's pipeline."""
        self._closed = True
        pipes, self._pipes = list(self._pipes.values()), {}
        for node, pipe in pipes:
            await self._retire(node, pipe)
