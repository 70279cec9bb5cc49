"""Running commands and scripts on Redis: lazy connection, retries, NOSCRIPT, closing.

Every round trip recostate makes goes through :class:`Executor`, so retries,
error translation and the closed state live in one place. The retry loop
resends a call only when redis-py reports a failure after which resending is
safe: recostate's writes are idempotent (a save carries a write id the script
remembers), so a save whose reply was lost is recognised when it comes again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster

from recostate._errors import StoreClosedError
from recostate._redis._compat import closed_under_call
from recostate._redis.cluster import (
    ClusterGate,
    cluster_pool_figures,
    pipeline_on_node,
    scan_primaries,
)
from recostate._redis.cluster import run_and_wait as cluster_run_and_wait
from recostate._redis.cluster_pipeline import ClusterAutoPipeline
from recostate._redis.connection import DEFAULT_OPTIONS, AnyRedis, pool_figures
from recostate._redis.errors import is_retryable, translate
from recostate._redis.pipeline import AutoPipeline
from recostate._redis.script import Script

__all__ = ["Executor", "RetryPolicy"]

logger = logging.getLogger("recostate.redis")

T = TypeVar("T")
Encodable = bytes | str | int | float
_running_loop = asyncio.get_running_loop


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed round trip is sent again.

    Attributes:
        retries: how many times a call is resent after a retryable failure.
        backoff_base: the first wait in seconds; it doubles at each retry.
        backoff_cap: the longest single wait in seconds.
    """

    retries: int = 3
    backoff_base: float = 0.05
    backoff_cap: float = 1.0

    def delay(self, attempt: int) -> float:
        """Return the wait before retry number ``attempt`` (1-based), with jitter."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1)))
        # "Equal jitter": at least half the ceiling, so waits still grow.
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))


#: Requests larger than this many bytes skip the automatic pipeline.
_PIPELINE_MAX_REQUEST = 512 * 1024


def _payload_bytes(args: Sequence[Encodable]) -> int:
    size = 0
    for arg in args:
        if type(arg) is bytes:
            size += len(arg)
    return size


class Executor:
    """Owns the redis-py client of one store and every call made through it."""

    def __init__(
        self,
        factory: Callable[[], AnyRedis],
        *,
        owns_client: bool,
        retry: RetryPolicy,
        pool_timeout: float | None = DEFAULT_OPTIONS["pool_timeout"],
    ) -> None:
        self._factory = factory
        self._pool_timeout = pool_timeout
        self._gate: ClusterGate | None = None
        self._client: AnyRedis | None = None
        self._owns_client = owns_client
        self._retry = retry
        self._closed = False
        self._autopipe: (
            tuple[asyncio.AbstractEventLoop, Any, AutoPipeline | ClusterAutoPipeline] | None
        ) = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has been called."""
        return self._closed

    def _get_client(self) -> AnyRedis:
        if self._closed:
            raise StoreClosedError("this store has been closed")
        if self._client is None:
            self._client = self._factory()
            if isinstance(self._client, RedisCluster):
                # RedisCluster fails at once when a node's connections are all
                # busy; the gate makes callers wait for one instead (bounded).
                limit = self._client.get_connection_kwargs().get("max_connections") or 100
                self._gate = ClusterGate(int(limit), self._pool_timeout)
        return self._client

    async def _call(
        self, operation: Callable[[AnyRedis], Awaitable[T]], what: str, attempt: int = 0
    ) -> T:
        """Run ``operation`` with retries; ``attempt``: retries already spent on it."""
        while True:
            client = self._get_client()
            try:
                if self._gate is not None:
                    async with self._gate.turn():
                        try:
                            await self._gate.ready(client)  # type: ignore[arg-type]
                            return await operation(client)
                        except AttributeError as exc:
                            if not closed_under_call(exc):
                                raise
                            raise rexc.ConnectionError("connection closed during the call") from exc
                return await operation(client)
            except Exception as exc:
                attempt = await self._before_retry(exc, attempt, what)

    async def _before_retry(self, exc: Exception, attempt: int, what: str) -> int:
        """Wait before retrying after ``exc`` and return the retry's number; or raise."""
        if attempt < self._retry.retries and is_retryable(exc):
            attempt += 1
            delay = self._retry.delay(attempt)
            logger.debug(
                "%s failed (%s); retry %d in %.3fs", what, type(exc).__name__, attempt, delay
            )
            await anyio.sleep(delay)
            return attempt
        error = translate(exc)
        if error is exc:
            # Already a recostate error (the cluster gate's timeout):
            # ``from exc`` would make it its own cause.
            raise exc
        raise error from exc

    async def ping(self) -> None:
        """Connect if needed and check the server answers."""

        async def operation(client: Any) -> Any:
            return await client.ping()

        await self._call(operation, "PING")

    async def run(
        self,
        script: Script,
        keys: Sequence[bytes],
        args: Sequence[Encodable],
        payload_bytes: int | None = None,
    ) -> Any:
        """Run ``script`` with EVALSHA, loading it when the server does not know it.

        ``payload_bytes``: about how many bytes ``args`` hold, when the caller
        knows (otherwise they are counted), to choose between the automatic
        pipeline and a connection of its own.
        """
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        size = _payload_bytes(args) if payload_bytes is None else payload_bytes
        client = self._client
        attempt = 0
        unknown = False
        if client is not None and self._gate is None and not self._closed:
            # The common case, a standalone client already made: its first
            # attempt without the retry loop's closure and frames.
            try:
                return await self._send_sized(client, command, size)
            except rexc.NoScriptError:
                unknown = True
            except Exception as exc:
                attempt = await self._before_retry(exc, 0, script.name)

        async def operation(client: Any) -> Any:
            nonlocal unknown
            if not unknown:
                try:
                    return await self._send_sized(client, command, size)
                except rexc.NoScriptError:
                    unknown = True
            # A restarted or failed-over server lost its script cache.
            await self._load(client, script, keys[0] if keys else None)
            unknown = False
            return await self._send_sized(client, command, size)

        return await self._call(operation, script.name, attempt)

    async def run_and_wait(
        self,
        script: Script,
        keys: Sequence[bytes],
        args: Sequence[Encodable],
        *,
        replicas: int,
        timeout_ms: int,
    ) -> tuple[Any, int]:
        """Run ``script``, then ``WAIT replicas timeout_ms`` on the same connection.

        Returns the script's reply and how many replicas acknowledged every
        write made so far on that connection. Both commands go in one
        pipeline, so WAIT counts acknowledgements of this very write.
        """

        async def operation(client: Any) -> tuple[Any, int]:
            for _ in range(2):
                if isinstance(client, RedisCluster):
                    evalsha = ("EVALSHA", script.sha, len(keys), *keys, *args)
                    reply, acked = await cluster_run_and_wait(
                        client, evalsha, keys[0], replicas, timeout_ms, source=script.source
                    )
                else:
                    pipe = client.pipeline(transaction=False)
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                    pipe.execute_command("WAIT", replicas, timeout_ms)
                    reply, acked = await pipe.execute(raise_on_error=False)
                if isinstance(reply, rexc.NoScriptError):
                    await self._load(client, script)
                    continue
                for item in (reply, acked):
                    if isinstance(item, BaseException):
                        raise item
                return reply, int(acked)
            raise rexc.NoScriptError(f"script {script.name} was flushed again right after loading")

        return await self._call(operation, script.name)

    async def _load(self, client: Any, script: Script, key: bytes | None = None) -> None:
        if isinstance(client, RedisCluster):
            await client.execute_command(
                "SCRIPT LOAD", script.source, target_nodes=RedisCluster.PRIMARIES
            )
            if key is not None:
                # And on the node that serves the key, as the client sees it
                # now: while its map catches up with a failover, the promoted
                # node may not be among the primaries it lists yet.
                await client.execute_command(
                    "SCRIPT LOAD",
                    script.source,
                    target_nodes=client.get_node_from_key(key),  # type: ignore[arg-type]  # bytes are encoded as is
                )
        else:
            await client.script_load(script.source)

    async def command(self, *args: Encodable) -> Any:
        """Send one command (only read-only or idempotent ones go through here)."""

        async def operation(client: Any) -> Any:
            return await self._send(client, *args)

        return await self._call(operation, str(args[0]))

    # -- automatic pipelining (recostate._redis.pipeline) ------------------------------

    def _pipeline(self, client: Any) -> AutoPipeline | ClusterAutoPipeline | None:
        """Return the pipeline of ``client`` on the running loop; ``None`` where it does not apply."""
        cluster = isinstance(client, RedisCluster)
        if not cluster and getattr(client, "single_connection_client", True):
            return None
        loop = asyncio.get_running_loop()
        current = self._autopipe
        if current is None or current[0] is not loop or current[1] is not client:
            # A store used from a new event loop (or with a new client) gets a
            # new pipeline: the old one's drivers belonged to the old loop.
            pipe = ClusterAutoPipeline(client) if cluster else AutoPipeline(client)
            current = (loop, client, pipe)
            self._autopipe = current
        return current[2]

    async def _send(self, client: Any, *args: Encodable) -> Any:
        """Send one command, through the automatic pipeline unless it is large."""
        return await self._send_sized(client, args, _payload_bytes(args))

    async def _send_sized(self, client: Any, args: tuple[Encodable, ...], size: int) -> Any:
        """:meth:`_send` of a command whose arguments hold about ``size`` bytes."""
        current = self._autopipe
        if current is not None and current[1] is client and current[0] is _running_loop():
            pipeline: AutoPipeline | ClusterAutoPipeline | None = current[2]
        else:
            pipeline = self._pipeline(client)
        if pipeline is None or size > _PIPELINE_MAX_REQUEST:
            # Large requests go alone on a connection of their own, so they
            # never hold small ones up behind them.
            return await client.execute_command(*args)
        return await pipeline.execute(*args)

    async def _scan_page(
        self, cursor: int, match: bytes, count: int, type_: str | None
    ) -> tuple[int, list[bytes]]:
        async def operation(client: Any) -> tuple[int, list[bytes]]:
            return await client.scan(cursor, match=match, count=count, _type=type_)  # type: ignore[no-any-return]

        return await self._call(operation, "SCAN")

    async def scan(
        self, match: bytes, *, count: int = 1000, type_: str | None = None
    ) -> AsyncIterator[bytes]:
        """Yield the keys matching ``match`` (SCAN, never KEYS), each page retried on failure.

        On a cluster, every primary is scanned in turn.
        """
        if isinstance(self._get_client(), RedisCluster):
            async for key in scan_primaries(self._call, match, count=count, type_=type_):
                yield key
            return
        cursor = 0
        while True:
            cursor, keys = await self._scan_page(cursor, match, count, type_)
            for key in keys:
                yield key
            if cursor == 0:
                break

    async def hget_many(self, keys: Sequence[bytes], field: str) -> list[Any]:
        """Return ``HGET key field`` for each key, in one round trip per node (a pipeline).

        Only for reads: a failed batch is sent again whole.
        """
        if not keys:
            return []

        async def operation(client: Any) -> list[Any]:
            if isinstance(client, RedisCluster):
                return await pipeline_on_node(client, [("HGET", key, field) for key in keys])
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hget(key, field)
            return await pipe.execute()  # type: ignore[no-any-return]

        return await self._call(operation, "HGET")

    async def info(self) -> dict[str, Any]:
        """Return ``INFO`` of the server (of each primary, by node name, on a cluster)."""

        async def operation(client: Any) -> dict[str, Any]:
            if isinstance(client, RedisCluster):
                # Left alone, RedisCluster asks only its default node.
                return await client.info(target_nodes=RedisCluster.PRIMARIES)
            return await client.info()  # type: ignore[no-any-return]

        return await self._call(operation, "INFO")

    def pool(self) -> dict[str, Any]:
        """Return the pool's size and use (zeros before the first connection)."""
        if self._client is None:
            return {"kind": "unopened", "max_connections": 0, "in_use": 0, "idle": 0}
        if isinstance(self._client, RedisCluster):
            return cluster_pool_figures(self._client, self._gate)
        return pool_figures(self._client)

    async def aclose(self) -> None:
        """Release the pool (if recostate created the client); later calls raise."""
        if self._closed:
            return
        self._closed = True
        client, self._client = self._client, None
        autopipe, self._autopipe = self._autopipe, None
        if autopipe is not None and autopipe[0] is asyncio.get_running_loop():
            await autopipe[2].aclose()
        if client is not None and self._owns_client:
            try:
                await client.aclose()
            except (rexc.RedisError, OSError) as exc:  # pragma: no cover - closing a dead pool
                logger.debug("closing the Redis client failed: %s", exc)
