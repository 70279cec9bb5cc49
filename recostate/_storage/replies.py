"""What the scripts answer, as types: the rest of recostate never reads a reply by position.

Each ``parse_*`` function turns one script's positional reply into a
``msgspec.Struct``; the outcomes that stop an operation (a lost
compare-and-set, pieces the server lacks, another dictionary) become the
exceptions below, which the storage layer's callers handle.
"""

from __future__ import annotations

from typing import Any

import msgspec

from recostate._codec.versions import StoredVersion

__all__ = [
    "Conflict",
    "DictionaryMismatch",
    "Header",
    "Held",
    "Inventory",
    "Loaded",
    "PiecesMissing",
    "Saved",
    "StateInfo",
    "StoredPiece",
    "VersionFrame",
    "is_legacy",
    "parse_frame",
    "parse_header",
    "parse_held",
    "parse_inventory",
    "parse_load",
    "parse_save",
    "parse_state_info",
    "parse_versions",
]

_LEGACY = b"legacy"


class Conflict(Exception):
    """A compare-and-set or an explicit version that did not hold; nothing was written."""

    def __init__(self, head: int) -> None:
        super().__init__(head)
        self.head = head


class PiecesMissing(Exception):
    """The server lacks a piece the version refers to and was not sent; nothing was written."""


class DictionaryMismatch(Exception):
    """The state has another compression dictionary than the one the chunks used."""

    def __init__(self, frame: bytes) -> None:
        super().__init__()
        self.frame = frame


class Saved(msgspec.Struct):
    """A save that was applied.

    Attributes:
        version: the version it wrote.
        created_ms: when the state's first version was written (ms since the epoch).
        duplicate: the write id was applied before (a retry); nothing new was written.
        first_head: for a duplicate, the header bytes of the version the first
            save wrote, while it is still stored.
        replicas: with ``wait_for_replicas``, how many replicas acknowledged it.
    """

    version: int
    created_ms: int
    duplicate: bool = False
    first_head: bytes | None = None
    replicas: int | None = None


class Loaded(msgspec.Struct):
    """A version as read for decoding.

    Attributes:
        version: its number.
        created_ms: when the state's first version was written.
        stored: its frame and the pieces read.
        to_fetch: ids of chunks the script left for a plain ``HMGET``.
    """

    version: int
    created_ms: int | None
    stored: StoredVersion
    to_fetch: list[bytes] = msgspec.field(default_factory=list)


class VersionFrame(msgspec.Struct):
    """A version's frame alone."""

    version: int
    created_ms: int | None
    frame: bytes


class Header(msgspec.Struct):
    """A version's header bytes and stored size, read without its payload."""

    version: int
    created_ms: int | None
    head: bytes
    size: int


class StateInfo(msgspec.Struct):
    """A state's version numbers, creation time and remaining time to live."""

    created_ms: int | None
    ttl_ms: int | None
    versions: list[int]


class Held(msgspec.Struct):
    """Which of the pieces asked about a state holds, and its dictionary.

    Attributes:
        sizes: piece id -> its stored size, for the pieces held.
        dictionary_id: the state's dictionary id (``b""``: none).
        dictionary: that dictionary's frame, or ``None``.
    """

    sizes: dict[bytes, int]
    dictionary_id: bytes
    dictionary: bytes | None


class StoredPiece(msgspec.Struct):
    """One stored piece with its reference count."""

    ident: bytes
    frame: bytes
    references: int | None


class Inventory(msgspec.Struct):
    """Everything a state stores: its versions' frames, its pieces, its dictionary."""

    versions: list[tuple[int, bytes | None]]
    pieces: list[StoredPiece]
    dictionary: bytes | None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def is_legacy(reply: Any) -> bool:
    """Tell whether a script answered that the state is still in 0.1's layout."""
    return isinstance(reply, list) and len(reply) == 1 and reply[0] == _LEGACY


def parse_save(reply: Any) -> Saved:
    """Read the save script's reply; raise :class:`Conflict`, :class:`PiecesMissing`, ..."""
    status = reply[0]
    if status == b"ok":
        return Saved(int(reply[1]), int(reply[2]))
    if status == b"dup":
        return Saved(int(reply[1]), int(reply[2]), True, reply[3] or None)
    if status == b"conflict":
        raise Conflict(int(reply[1]))
    if status == b"missing":
        raise PiecesMissing()
    if status == b"dict":
        raise DictionaryMismatch(reply[1] or b"")
    raise ValueError(f"unexpected save reply {status!r}")


def parse_load(reply: Any) -> Loaded | None:
    """Read the load script's reply (``None``: no such state or version)."""
    if not reply:
        return None
    pieces = {reply[i]: reply[i + 1] for i in range(5, len(reply), 2) if reply[i + 1]}
    return Loaded(
        int(reply[0]),
        _int(reply[1]),
        StoredVersion(reply[2], pieces, reply[3] or None),
        list(reply[4] or ()),
    )


def parse_held(reply: Any, ids: list[bytes]) -> Held:
    """Read the held script's reply to a question about ``ids``."""
    sizes = {ident: int(size) for ident, size in zip(ids, reply[2:], strict=True) if int(size) > 0}
    return Held(sizes, reply[0] or b"", reply[1] or None)


def parse_frame(reply: Any) -> VersionFrame | None:
    """Read the frame script's reply."""
    if not reply:
        return None
    return VersionFrame(int(reply[0]), _int(reply[1]), reply[2])


def parse_header(reply: Any) -> Header | None:
    """Read the metadata script's reply."""
    if not reply:
        return None
    return Header(int(reply[0]), _int(reply[1]), reply[2], int(reply[3]))


def parse_versions(reply: Any) -> list[Header]:
    """Read the versions script's reply, oldest first."""
    if not reply:
        return []
    created = _int(reply[0])
    return [Header(int(v), created, head, int(size)) for v, head, size in reply[1:]]


def parse_state_info(reply: Any) -> StateInfo | None:
    """Read the read-state script's reply."""
    if not reply:
        return None
    ttl = int(reply[1])
    return StateInfo(_int(reply[0]), ttl if ttl > 0 else None, [int(v) for v in reply[2]])


def parse_inventory(reply: Any) -> Inventory:
    """Read the pieces script's reply."""
    versions = [(int(v), frame or None) for v, frame in reply[0]]
    pieces = [StoredPiece(ident, frame, _int(count or None)) for ident, frame, count in reply[1]]
    return Inventory(versions, pieces, reply[2] or None)
