"""Automatic pipelining: concurrent calls on one store share round trips.

Most of the time of a small Redis call made from Python is spent on the round
trip and on per-command client overhead, not in Redis. So when many tasks
call the store at once, :class:`AutoPipeline` packs what they ask for into
batches and writes each batch to one connection in one go:

* A caller that finds the pipeline idle goes out at once, alone, from its own
  task: there is no timer, no added delay and no other task to wake.
* While a request or a batch is in flight on a connection, new calls queue;
  the queue becomes the next batch as soon as the connection is free (or on
  another connection, up to ``lanes`` of them).
* Replies are read in order, on the connection that sent the requests. A
  batch's are read by a driver task that belongs to the pipeline, not to any
  caller: a caller that is cancelled while its request is in flight gives up
  only its own reply; the driver still reads it and throws it away, so no
  reply ever shifts onto another caller. A lone request's reply is read by
  its caller; cancelled then, it closes the connection, whose reply so
  reaches no one. A request still queued when its caller is cancelled is
  never sent.
* When a connection fails (reset, timeout, closed), exactly the requests that
  were written to it fail, each with its own copy of the error; queued
  requests go out on a fresh connection. The executor decides what to retry
  (recostate's writes carry write ids, so resending them is idempotent).
* An error reply (``NOSCRIPT``, ``WRONGTYPE``...) belongs to its request alone.

Connections come from the client's own pool and go back to it when the queue
is empty, so the pool's size and timeout bound the pipeline too, and a
recostate store and any other user of the same client share one pool. One
just used is kept until the loop's next turn, so a caller awaiting one call
after another reuses it without a trip through the pool.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import deque
from typing import Any

import hiredis
from redis import exceptions as rexc
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

from recostate._redis._compat import INCOMPLETE as _INCOMPLETE
from recostate._redis._compat import hiredis_reader, pool_connection, push_handler, write_now

__all__ = ["DEFAULT_LANES", "DEFAULT_MAX_BATCH", "DEFAULT_MAX_BATCH_BYTES", "AutoPipeline"]

logger = logging.getLogger("recostate.redis")

#: Connections a pipeline drives at once.
DEFAULT_LANES = 2
#: The most requests written in one batch.
DEFAULT_MAX_BATCH = 256
#: A batch stops growing once its requests pass this many bytes.
DEFAULT_MAX_BATCH_BYTES = 1024 * 1024

Encodable = bytes | str | int | float


def _pack(args: tuple[Encodable, ...]) -> bytes:
    try:
        return bytes(hiredis.pack_command(args))  # type: ignore[arg-type]
    except (TypeError, ValueError, UnicodeError):
        # What hiredis refuses, redis-py's encoder may still take (or explain).
        return b"".join(_fallback_packer().pack_command(*args))


_packer: AbstractConnection | None = None


def _fallback_packer() -> AbstractConnection:
    global _packer
    if _packer is None:
        from redis.asyncio.connection import Connection

        _packer = Connection()
    return _packer


_PUSH = getattr(hiredis, "PushNotification", None)
_SPECIAL: tuple[type, ...] = (rexc.ConnectionError, rexc.ResponseError) + (
    (_PUSH,) if _PUSH is not None else ()
)


async def _next_reply(connection: AbstractConnection, reader: Any, reply: Any) -> Any:
    """Return the next reply, given what the parser's buffer yielded (``reply``).

    An error reply taken from the buffer is returned as the exception it
    parses to (``LOADING`` gives a ``BusyLoadingError``, a ``ConnectionError``):
    it was read whole, so it is that request's answer and the connection
    stays in step. ``read_response()`` raises instead, and for the
    ``ConnectionError`` kinds it also closes the connection.
    """
    while reader is not None and reply is not _INCOMPLETE:
        if isinstance(reply, (rexc.ConnectionError, rexc.ResponseError)):
            return reply
        if _PUSH is not None and isinstance(reply, _PUSH):
            # Out-of-band (RESP3 push): redis-py's handler gets it, as it would.
            handler = push_handler(connection)
            if handler is not None:
                await handler(reply)
            reply = reader.gets()
            continue
        return reply
    return await connection.read_response()


class _Request:
    __slots__ = ("command", "future", "packed")

    def __init__(self, command: str, packed: bytes, future: asyncio.Future[Any]) -> None:
        self.command = command
        self.packed = packed
        self.future = future


def _own_copy(exc: BaseException) -> BaseException:
    # Each waiting caller raises its own instance: one exception object raised
    # in many tasks would collect all their tracebacks.
    try:
        clone = copy.copy(exc)
    except Exception:  # pragma: no cover - an exception that cannot be copied
        return exc
    clone.__cause__ = exc.__cause__
    clone.__traceback__ = None
    return clone


class AutoPipeline:
    """Batches the commands of concurrent callers onto a standalone client's connections.

    Args:
        client: a ``redis.asyncio.Redis`` whose pool lends the connections.
        lanes: how many connections may carry batches at the same time.
        max_batch: the most requests in one batch.
        max_batch_bytes: a batch stops growing past this many bytes.
    """

    def __init__(
        self,
        client: Redis,
        *,
        lanes: int = DEFAULT_LANES,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    ) -> None:
        self._client = client
        self._pool = client.connection_pool
        self._callbacks = client.response_callbacks
        self._lanes = max(1, lanes)
        self._max_batch = max(1, max_batch)
        self._max_batch_bytes = max_batch_bytes
        self._queue: deque[_Request] = deque()
        self._drivers: set[asyncio.Task[None]] = set()
        # Drivers holding a connection with nothing in flight.
        self._idle = 0
        # Requests in flight from their callers' own tasks (see _alone).
        self._direct = 0
        self._parked: AbstractConnection | None = None
        self._releasing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.batches = 0
        self.requests = 0

    @property
    def queued(self) -> int:
        """Requests waiting for a connection."""
        return len(self._queue)

    async def execute(self, *args: Encodable) -> Any:
        """Send one command in the next batch and return its parsed reply.

        Raises what redis-py raises for this command: its error reply, or the
        error of the connection it was written to.
        """
        if self._closed:
            raise rexc.ConnectionError("the pipeline is closed")
        command = args[0] if isinstance(args[0], str) else args[0].decode()  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        request = _Request(command, _pack(args), future)
        if not self._drivers and not self._direct:
            # Nothing in flight: this caller goes out alone, on its own task,
            # with no driver task to start and no loop turn to hand the reply over.
            return await self._alone(request)
        self._queue.append(request)
        self._serve_queue()
        return await future

    def _serve_queue(self) -> None:
        """Start a driver for the queue if it needs one and a lane is free.

        A driver between batches takes the queue on its own; another starts
        only when every running driver is busy with a batch in flight.
        """
        if self._queue and self._idle == 0 and len(self._drivers) + self._direct < self._lanes:
            self._start_driver()

    def _start_driver(self) -> None:
        self._idle += 1
        task = asyncio.get_running_loop().create_task(self._drive())
        self._drivers.add(task)
        task.add_done_callback(self._drivers.discard)

    async def _alone(self, request: _Request) -> Any:
        """Send one request from the caller's own task and return its reply.

        While it is in flight, other callers queue and a driver takes them
        (the request counts as one of the ``lanes``). A caller cancelled
        while its reply is on its way leaves it unread: that connection is
        closed before the pool lends it again, so the reply reaches no one.
        """
        self._direct += 1
        connection: AbstractConnection | None = None
        try:
            connection = await self._borrow()
            await self._round_trip(connection, [request])
        except BaseException as exc:
            if connection is not None:
                logger.debug("request sent alone failed: %r", exc)
                await connection.disconnect(nowait=True)
                self._give_back(connection)
            if not request.future.done():
                request.future.cancel()
            raise
        else:
            self._park(connection)
            return request.future.result()
        finally:
            self._direct -= 1
            # Callers that came meanwhile may have found every lane taken.
            self._serve_queue()

    async def _borrow(self) -> AbstractConnection:
        """Take the parked connection, or one from the pool."""
        connection = self._parked
        if connection is not None:
            self._parked = None
            return connection
        return await pool_connection(self._pool)

    def _park(self, connection: AbstractConnection) -> None:
        """Keep a connection just used until the loop's next turn, then give it back.

        A caller that calls again at once (a loop of awaits) takes it back
        without the pool's lock, health check and bookkeeping.
        """
        if self._parked is not None or self._closed:
            self._give_back(connection)
            return
        self._parked = connection
        asyncio.get_running_loop().call_soon(self._unpark, connection)

    def _unpark(self, connection: AbstractConnection) -> None:
        if self._parked is connection:
            self._parked = None
            self._give_back(connection)

    def _give_back(self, connection: AbstractConnection) -> None:
        """Return a connection to the pool from a task of its own (it cannot be cancelled)."""
        task = asyncio.get_running_loop().create_task(self._pool.release(connection))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    def _take(self) -> list[_Request]:
        batch: list[_Request] = []
        size = 0
        queue = self._queue
        while queue and len(batch) < self._max_batch and size < self._max_batch_bytes:
            request = queue.popleft()
            if request.future.done():  # its caller was cancelled before it was sent
                continue
            batch.append(request)
            size += len(request.packed)
        return batch

    async def _drive(self) -> None:
        # Counted idle from its creation (see execute) until it takes a batch.
        connection: AbstractConnection | None = None
        try:
            while True:
                if not self._queue:
                    # Let the callers just answered run: those that call again
                    # at once join this driver instead of taking a connection
                    # from the pool for a new one.
                    await asyncio.sleep(0)
                    if not self._queue:
                        break
                if connection is None:
                    try:
                        connection = await self._borrow()
                    except Exception as exc:
                        self._fail(self._take(), exc)
                        continue
                batch = self._take()
                if not batch:
                    continue
                self._idle -= 1
                try:
                    await self._round_trip(connection, batch)
                except Exception as exc:
                    logger.debug("pipelined batch of %d failed: %r", len(batch), exc)
                    self._fail(batch, exc)
                    # Replies to the rest of the batch may still be on their
                    # way: the connection is closed before the pool lends it
                    # again (it reconnects then), so they can reach no one.
                    await connection.disconnect(nowait=True)
                    await self._pool.release(connection)
                    connection = None
                except BaseException:
                    self._fail(batch, rexc.ConnectionError("the pipeline was closed"))
                    raise
                finally:
                    self._idle += 1
        finally:
            self._idle -= 1
            # Leave the set of drivers before the last await: a caller that
            # comes meanwhile must start a new driver, not count on this one.
            self._drivers.discard(asyncio.current_task())
            if connection is not None:
                self._park(connection)

    async def _round_trip(self, connection: AbstractConnection, batch: list[_Request]) -> None:
        self.batches += 1
        self.requests += len(batch)
        packed = [request.packed for request in batch] if len(batch) > 1 else batch[0].packed
        if not write_now(connection, packed):
            # Not open yet (it connects), or the socket did not take it all:
            # redis-py sends (or drains what waits) under its socket timeout.
            await connection.send_packed_command(
                [] if connection.is_connected else packed, check_health=False
            )
        callbacks = self._callbacks
        reader = hiredis_reader(connection)
        for index, request in enumerate(batch):
            try:
                # Replies already buffered are taken straight from the parser:
                # one socket read often brings a whole batch, and redis-py's
                # read_response() arms a timer for each reply.
                reply = reader.gets() if reader is not None else _INCOMPLETE
                if reply is _INCOMPLETE or isinstance(reply, _SPECIAL):
                    # Not buffered yet, an error, or a push message: the slow path.
                    reply = await _next_reply(connection, reader, reply)
            except rexc.ResponseError as exc:
                # An error reply: read whole, the connection stays in step.
                if not request.future.done():
                    request.future.set_exception(exc)
                continue
            except BaseException:
                # The requests before this one have their replies already.
                del batch[:index]
                raise
            future = request.future
            if future.done():  # cancelled caller: its reply is dropped here
                continue
            if isinstance(reply, Exception):  # an error reply from the buffer
                future.set_exception(reply)
                continue
            callback = callbacks.get(request.command)
            if callback is not None:
                try:
                    reply = callback(reply)
                except Exception as exc:  # pragma: no cover - a reply redis-py cannot parse
                    future.set_exception(exc)
                    continue
            future.set_result(reply)
        batch.clear()

    def _fail(self, batch: list[_Request], exc: BaseException) -> None:
        for request in batch:
            if not request.future.done():
                request.future.set_exception(_own_copy(exc))

    async def aclose(self) -> None:
        """Stop the drivers; queued and in-flight requests fail with a ``ConnectionError``."""
        self._closed = True
        drivers = list(self._drivers)
        for task in drivers:
            task.cancel()
        if drivers:
            await asyncio.gather(*drivers, return_exceptions=True)
        self._fail(list(self._queue), rexc.ConnectionError("the pipeline was closed"))
        self._queue.clear()
        if self._parked is not None:
            self._give_back(self._parked)
            self._parked = None
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
