"""Public value types: the compression choice, a state's metadata, the "use default" marker."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Final

import msgspec

__all__ = ["DEFAULT", "CompressionType", "Default", "StateMetadata"]


class CompressionType(str, enum.Enum):
    """The codec applied to the stored bytes of a state.

    ``LZ4`` is fast and the default; ``ZLIB`` is slower and smaller; ``NONE``
    stores the encoded state as it is. The stored bytes name their own codec, so
    a store configured with one type reads states written with another.
    """

    LZ4 = "lz4"
    ZLIB = "zlib"
    NONE = "none"


class Default(enum.Enum):
    """Type of :data:`DEFAULT`: "argument not passed", as opposed to ``None``."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


#: Marker for "use the store's default" (``ttl`` left out means ``default_ttl``,
#: while ``ttl=None`` means "never expire").
DEFAULT: Final = Default.DEFAULT


class StateMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """What recostate knows about one stored version of a state.

    Attributes:
        state_id: the id the state was saved under.
        version: this version's number (1 for the first save).
        created_at: when the first version of this state was written (UTC).
        updated_at: when this version was written (UTC).
        size_bytes: the encoded state's size, before compression.
        stored_bytes: the size of what is stored for this version (frame and payload).
        compression_type: the codec applied to the stored bytes (``NONE`` when the
            state was under the compression threshold or did not shrink).
        checksum: ``"<algorithm>:<hex digest>"`` of the stored frame.
        tags: the tags given when this version was saved.
        ttl: the time to live in seconds applied when this version was saved,
            ``None`` for no expiry.
        rolled_back_from: the version this one restores, when written by ``rollback``.
    """

    state_id: str
    version: int
    created_at: datetime
    updated_at: datetime
    size_bytes: int
    stored_bytes: int
    compression_type: CompressionType
    checksum: str
    tags: tuple[str, ...] = ()
    ttl: int | None = None
    rolled_back_from: int | None = None
