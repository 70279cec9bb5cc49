"""What the command line needs below the public API: stored versions as they are.

``export`` copies each version's stored frame, and for a chunked version the
pieces and dictionary it uses, so that ``import`` writes back exactly what
was stored: payload, codec, checksum, write time, tags and rollback origin.
``verify`` must reach versions whose header is too damaged for
:meth:`list_versions` to read, and check every piece a state holds. All of it
goes through the store's storage layer (``store.storage``) and codec
(``store.codec``), gathered here so that the rest of the command line uses
only the public API.
"""

from __future__ import annotations

import math
import os

from recostate._codec import StoredVersion
from recostate._codec.audit import audit
from recostate._errors import IntegrityError
from recostate._persistence import RedisStatePersistence
from recostate._storage import KEEP_TTL, Inventory
from recostate._storage.scripts import WRITE_ID_SIZE

__all__ = [
    "KEEP_TTL",
    "check_pieces",
    "read_version",
    "remaining_ttl_ms",
    "remaining_ttl_s",
    "state_info",
    "upgrade",
    "version_numbers",
    "write_version",
]


async def state_info(store: RedisStatePersistence, state_id: str) -> tuple[list[int], int | None]:
    """Return the state's version numbers (oldest first) and its remaining time to live in ms."""
    storage = store.storage
    info = await storage.state_info(storage.keys(state_id))
    if info is None:
        return [], None
    return info.versions, info.ttl_ms


async def version_numbers(store: RedisStatePersistence, state_id: str) -> list[int]:
    """Return the numbers of the state's stored versions, oldest first, headers unread."""
    return (await state_info(store, state_id))[0]


async def remaining_ttl_ms(store: RedisStatePersistence, state_id: str) -> int | None:
    """Return the milliseconds before the state expires, or ``None`` when it never does."""
    return (await state_info(store, state_id))[1]


async def remaining_ttl_s(store: RedisStatePersistence, state_id: str) -> int | None:
    """Return the whole seconds before the state expires (rounded up), or ``None`` for never."""
    ttl_ms = await remaining_ttl_ms(store, state_id)
    return None if ttl_ms is None else max(1, math.ceil(ttl_ms / 1000))


async def read_version(
    store: RedisStatePersistence, state_id: str, version: int
) -> tuple[StoredVersion, int | None] | None:
    """Return a version as stored (frame, pieces, dictionary) and the state's creation time."""
    storage = store.storage
    loaded = await storage.load(storage.keys(state_id), version)
    if loaded is None:
        return None
    return loaded.stored, loaded.created_ms


async def write_version(
    store: RedisStatePersistence,
    state_id: str,
    version: int,
    stored: StoredVersion,
    ttl_ms: int | None,
) -> None:
    """Store a version exactly as given, under its own number, with ``ttl_ms`` on every key.

    The version is checked (every piece and the whole state) before anything
    is written: a damaged one raises :class:`~recostate.IntegrityError`. The
    number must be higher than every one the state was given on this server,
    else :class:`~recostate.VersionConflictError`. The expiry is applied in
    the same atomic write, so an interrupted import never leaves a state
    that does not expire.
    """
    storage = store.storage
    encoded = store.codec.resend(stored, state_id, version)
    await storage.save(
        storage.keys(state_id),
        encoded,
        write_id=os.urandom(WRITE_ID_SIZE),
        expected=None,
        explicit=version,
        keep=store.config.versions_kept,
        ttl_ms=ttl_ms,
    )


async def check_pieces(store: RedisStatePersistence, state_id: str) -> list[str]:
    """Return what is wrong with the pieces a state holds (``[]``: all sound).

    Every piece is read and checked against its checksum and its id; every
    reference count must equal the references the versions and nodes hold;
    no piece may be orphaned and none referenced may be missing.
    """
    storage = store.storage
    inventory: Inventory = await storage.inventory(storage.keys(state_id))
    pieces = [(piece.ident, piece.frame, piece.references) for piece in inventory.pieces]
    return audit(store.codec, inventory.versions, pieces, inventory.dictionary, state_id)


async def upgrade(store: RedisStatePersistence, state_id: str) -> int:
    """Move one state from recostate 0.1's layout into the current one; versions moved."""
    storage = store.storage
    return await storage.upgrade(storage.keys(state_id))


async def is_sound(store: RedisStatePersistence, state_id: str, version: int) -> str | None:
    """Return why a version fails its checks, or ``None`` when it loads."""
    try:
        await store.load_with_metadata(state_id, version)
    except IntegrityError as exc:
        return exc.reason
    return None
