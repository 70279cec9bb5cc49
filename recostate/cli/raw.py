"""What the command line needs below the public API: stored frames, as they are.

``export`` copies each version's stored bytes (its frame) so that ``import``
writes back exactly what was stored: payload, codec, checksum, write time,
tags and rollback origin. ``verify`` must reach versions whose header is too
damaged for :meth:`list_versions` to read. Both go through the store's own
key layout, scripts and codec, gathered here so that the rest of the
command line uses only the public API.
"""

from __future__ import annotations

from typing import Any

from recostate import _scripts as scripts
from recostate._codec import EncodedFrame
from recostate._persistence import RedisStatePersistence

__all__ = ["read_frame", "remaining_ttl_ms", "version_numbers", "write_frame"]


async def version_numbers(store: RedisStatePersistence, state_id: str) -> list[int]:
    """Return the numbers in the state's version index, oldest first, headers unread."""
    keys = store._state(state_id)
    members = await store._executor.command("ZRANGE", keys.index, 0, -1)
    return [int(member) for member in members]


async def read_frame(
    store: RedisStatePersistence, state_id: str, version: int
) -> tuple[bytes, int | None] | None:
    """Return the stored frame of ``version`` and the state's creation time (ms), or ``None``."""
    keys = store._state(state_id)
    reply: Any = await store._run(scripts.LOAD, keys, version)
    if reply is None:
        return None
    created = reply[1]
    return bytes(reply[2]), None if created is None else int(created)


async def remaining_ttl_ms(store: RedisStatePersistence, state_id: str) -> int | None:
    """Return the milliseconds before the state expires, or ``None`` when it never does."""
    keys = store._state(state_id)
    left = int(await store._executor.command("PTTL", keys.state))
    return left if left > 0 else None


async def write_frame(
    store: RedisStatePersistence, state_id: str, version: int, frame: bytes
) -> None:
    """Store ``frame`` as ``version`` of ``state_id``, after checking and decoding it.

    The number must be higher than every one the state was given on this
    server, else :class:`~recostate.VersionConflictError`; a damaged frame
    raises :class:`~recostate.IntegrityError` and nothing is written.
    """
    keys = store._state(state_id)
    _, info = await store._codec.decode(frame, keys.state_id, version)
    await store._write(keys, EncodedFrame(frame, info), version=version, expected=None, ttl=None)
