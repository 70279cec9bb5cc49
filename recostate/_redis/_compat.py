"""Every use of redis-py's internals (and one of asyncio's), in one place.

recostate drives redis-py below its documented API in a few places: to read
replies straight from the hiredis buffer (speed), to report pool use (figures),
and to do what redis-py's cluster client does not (a bounded wait for a
connection, a slot map reloaded on demand). Each helper below says what it
relies on and which redis-py versions need which form; ``tests/test_redis_compat.py``
has one test per helper, run in CI on the lowest and the newest redis-py the
metadata allows, that fails when an installed redis-py changes what it relies on.

Supported: redis-py 5.0.2 to 8.x (``pyproject.toml``).
"""

from __future__ import annotations

import asyncio
import inspect
import os
from typing import Any

import hiredis
import redis
from redis import exceptions as rexc
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.sentinel import Sentinel

__all__ = [
    "INCOMPLETE",
    "POOL_EXHAUSTED",
    "REDIS_PY_VERSION",
    "close_sentinels",
    "closed_under_call",
    "cluster_needs_slot_map",
    "hiredis_reader",
    "is_pool_exhausted",
    "learn_moved",
    "node_connection",
    "node_is_routed",
    "node_release",
    "node_use",
    "pool_connection",
    "pool_use",
    "push_handler",
    "reload_slot_map",
    "reload_slot_map_later",
    "semaphore_free",
    "write_now",
]

#: The installed redis-py, as numbers: ``(8, 2, 0)``.
REDIS_PY_VERSION: tuple[int, ...] = tuple(
    int(part) for part in redis.__version__.split(".")[:3] if part.isdigit()
)

# -- one server: the blocking pool -------------------------------------------------------

# redis-py 5.0 to 5.2 require a command name (which the asyncio pools ignore);
# 5.3 made it optional, and from 5.3 on passing one raises a DeprecationWarning.
# Known per pool class by its signature (a cluster node's stand-in has none).
_NEEDS_COMMAND_NAME: dict[type, bool] = {}


def _needs_command_name(kind: type) -> bool:
    needs = _NEEDS_COMMAND_NAME.get(kind)
    if needs is None:
        param = inspect.signature(kind.get_connection).parameters.get("command_name")  # type: ignore[attr-defined]
        needs = param is not None and param.default is inspect.Parameter.empty
        _NEEDS_COMMAND_NAME[kind] = needs
    return needs


async def pool_connection(pool: Any) -> AbstractConnection:
    """Borrow a connection from a connection pool (a blocking one waits up to its timeout)."""
    if _needs_command_name(type(pool)):
        return await pool.get_connection("_")  # type: ignore[no-any-return]
    return await pool.get_connection()  # type: ignore[no-any-return]


#: What redis-py's BlockingConnectionPool says when its timeout passed with no
#: free connection (a plain ``ConnectionError``, the same text in 5.0 to 8.x).
POOL_EXHAUSTED = "No connection available."


def is_pool_exhausted(exc: BaseException) -> bool:
    """Tell whether ``exc`` is a blocking pool that waited its full timeout in vain."""
    return isinstance(exc, rexc.ConnectionError) and str(exc) == POOL_EXHAUSTED


def pool_use(pool: Any) -> tuple[int, int]:
    """Return ``(in use, idle)`` connections of a connection pool.

    ``_in_use_connections`` and ``_available_connections`` (redis-py 5.0 to 8.x);
    zeros for a pool without them.
    """
    return (
        len(getattr(pool, "_in_use_connections", ())),
        len(getattr(pool, "_available_connections", ())),
    )


# -- reading replies from the hiredis buffer ---------------------------------------------

# What the hiredis Reader behind a connection returns from ``gets()`` when no
# whole reply is buffered: from redis-py 5.0.8 on, the parser builds it with
# ``notEnoughData=NOT_ENOUGH_DATA`` (kept in ``redis._parsers.hiredis``);
# before, hiredis's default, ``False``, which no RESP2 reply can be (a RESP3
# connection then takes the slow path, see ``hiredis_reader``).
try:
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as INCOMPLETE
except ImportError:  # redis-py before 5.0.8
    INCOMPLETE = False


def hiredis_reader(connection: AbstractConnection) -> hiredis.Reader | None:
    """Return the hiredis Reader behind ``connection`` (``connection._parser._reader``).

    The same attribute in redis-py 5.0 to 8.x, set while the connection is
    open. ``None`` when it is not there (or when its "incomplete" marker is
    unknown on a RESP3 connection): the caller then reads every reply with
    ``read_response()``, slower but always right.
    """
    if INCOMPLETE is False and getattr(connection, "protocol", 2) not in (2, "2"):
        return None  # RESP3 has a boolean false that would read as "incomplete"
    reader = getattr(getattr(connection, "_parser", None), "_reader", None)
    return reader if isinstance(reader, hiredis.Reader) else None


def write_now(connection: AbstractConnection, data: list[bytes] | bytes) -> bool:
    """Hand ``data`` to an open connection's transport; ``True`` if none of it is left buffered.

    ``connection._writer`` (an ``asyncio.StreamWriter``, the same attribute in
    redis-py 5.0 to 8.x, set while the connection is open). redis-py's
    ``send_packed_command`` wraps every write in ``asyncio.wait_for``, which
    on Python 3.11 and older makes a task per call; a write that the socket
    takes at once needs neither the task nor the wait. ``False``: nothing was
    written (the connection is not open) or some of it waits in the buffer:
    the caller then sends through ``send_packed_command`` (with nothing, to
    wait for the buffer under the socket timeout), whose errors and
    disconnects are redis-py's own.
    """
    writer = getattr(connection, "_writer", None)
    if writer is None or not connection.is_connected:
        return False
    transport = writer.transport
    if transport.is_closing():
        return False
    if isinstance(data, bytes):
        writer.write(data)
    else:
        writer.writelines(data)
    return transport.get_write_buffer_size() == 0  # type: ignore[no-any-return]


def push_handler(connection: AbstractConnection) -> Any:
    """Return the hiredis parser's handler of RESP3 push messages, or ``None``.

    ``connection._parser.handle_push_response`` from redis-py 6.2 on; before,
    its hiredis parser has none, and a push message (recostate subscribes to
    nothing, so only a server's own) is dropped.
    """
    return getattr(getattr(connection, "_parser", None), "handle_push_response", None)


# -- Redis Cluster: the slot map ----------------------------------------------------------


def cluster_needs_slot_map(client: RedisCluster) -> bool:
    """Tell whether the client's ``initialize()`` has a slot map to load right now.

    redis-py 8.2 on: ``RedisCluster._initialize_due()``: a refresh asked for
    waits ``topology_refresh_min_interval`` after the previous one, and only
    the first load makes other callers wait (the current map serves them
    meanwhile). Before 8.2: ``RedisCluster._initialize``, set at creation and
    after connection errors, cleared by ``initialize()``.
    """
    due = getattr(client, "_initialize_due", None)
    if due is not None:
        return bool(due())
    return bool(client._initialize)


def reload_slot_map_later(client: RedisCluster) -> None:
    """Ask the client to reload its slot map (``RedisCluster._initialize``, redis-py 5.0 to 8.x).

    What ``RedisCluster.execute_command`` does itself after a connection error;
    its pipelines (with retries off) do not, so recostate does it for them.
    The next command reloads it (from redis-py 8.2 on, once the refresh is due).
    """
    client._initialize = True


async def reload_slot_map(client: RedisCluster) -> None:
    """Reload the slot map now (``client.nodes_manager.initialize()``, redis-py 5.0 to 8.x)."""
    await client.nodes_manager.initialize()


async def learn_moved(client: RedisCluster, error: rexc.MovedError) -> None:
    """Record a ``MOVED`` reply in the client's slot map, as the client does itself.

    redis-py 8.0 and later: ``await nodes_manager.move_slot(error)``; 7.2 to
    7.4: the same method, not a coroutine; before 7.2: the error is left in
    ``nodes_manager._moved_exception`` and applied at the next slot lookup.
    """
    manager = client.nodes_manager
    move_slot = getattr(manager, "move_slot", None)
    if move_slot is None:
        manager._moved_exception = error  # type: ignore[attr-defined]  # before 7.2 only
        return
    result = move_slot(error)
    if inspect.isawaitable(result):
        await result


# -- Redis Cluster: a node's connections --------------------------------------------------


def node_connection(node: ClusterNode) -> AbstractConnection:
    """Take a connection of ``node`` (``ClusterNode.acquire_connection()``, redis-py 5.0 to 8.x).

    Raises ``MaxConnectionsError`` at once when all of them are in use.
    """
    return node.acquire_connection()


def node_release(node: ClusterNode, connection: AbstractConnection) -> None:
    """Give a connection taken with :func:`node_connection` back to ``node``.

    ``ClusterNode.release()`` from redis-py 6.2 on; before, the node's own code
    puts it back on its ``_free`` deque, and so does this.
    """
    release = getattr(node, "release", None)
    if release is not None:
        release(connection)
    else:
        node._free.append(connection)  # type: ignore[arg-type]


def node_use(node: ClusterNode) -> tuple[int, int]:
    """Return ``(in use, idle)`` connections of a cluster node (``_connections``, ``_free``)."""
    total = len(getattr(node, "_connections", ()))
    idle = len(getattr(node, "_free", ()))
    return total - idle, idle


def node_is_routed(client: RedisCluster, node: ClusterNode) -> bool:
    """Tell whether the client may still send commands through this very node object.

    Its node objects live in ``nodes_manager.nodes_cache`` and, per slot, in
    ``nodes_manager.slots_cache`` (redis-py 5.0 to 8.x); before 8.0 a
    reloaded map may route slots to objects that are not in ``nodes_cache``.
    """
    manager = client.nodes_manager
    if manager.nodes_cache.get(node.name) is node:
        return True
    return any(held is node for nodes in manager.slots_cache.values() for held in nodes)


_REDIS_PY_DIR = os.path.dirname(os.path.abspath(redis.__file__)) + os.sep


def closed_under_call(exc: BaseException) -> bool:
    """Tell whether ``exc`` is redis-py using a connection another task just closed.

    When a cluster client reloads its slot map it disconnects every
    connection, including those other tasks are using; their next read or
    write then fails inside redis-py with ``AttributeError: 'NoneType' object
    has no attribute ...`` (redis-py 5.0 to 8.x). Known by that message and
    by the last frame of its traceback lying in redis-py's own files.
    """
    if not isinstance(exc, AttributeError) or "'NoneType'" not in str(exc):
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    path = os.path.abspath(tb.tb_frame.f_code.co_filename) if tb is not None else ""
    return path.startswith(_REDIS_PY_DIR)


# -- Sentinel -----------------------------------------------------------------------------


async def close_sentinels(manager: Sentinel) -> None:
    """Close the connections to the Sentinels themselves.

    ``Sentinel.aclose()`` from redis-py 8.1 on; before, each client of
    ``manager.sentinels`` is closed in turn, which is what it does.
    """
    aclose = getattr(manager, "aclose", None)
    if aclose is not None:
        await aclose()
        return
    for sentinel in manager.sentinels:
        await sentinel.aclose()


# -- asyncio --------------------------------------------------------------------------------


def semaphore_free(semaphore: asyncio.Semaphore) -> int:
    """Return how many more holders ``semaphore`` admits now (``Semaphore._value``, CPython 3.10 to 3.13)."""
    return int(semaphore._value)
