"""The headers inside frames, one shape per frame kind (see ``recostate._codec.frame``).

A version header is a msgpack array so that the server-side scripts can read
it with ``cmsgpack`` by position; the trailing fields of a chunked version
are absent from whole versions, which keeps whole frames byte for byte what
recostate 0.1 wrote.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

import msgspec

__all__ = [
    "ChunkHeader",
    "DictionaryHeader",
    "NonNegative",
    "VersionHeader",
    "header_decoder",
    "header_encoder",
]

# A header field a forged or damaged frame could make negative.
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class VersionHeader(msgspec.Struct, frozen=True, array_like=True):
    """The metadata of one version, inside its frame (kinds 1 and 2).

    ``ttl`` and ``rolled_back_from`` are 0 for "none": msgpack nil would leave
    a hole in a Lua table. The last three fields belong to chunked versions:
    the size of the version with every piece it refers to, the CRC-32 of the
    whole encoded state, and the codec its chunks were written with.
    """

    updated_at_ms: NonNegative
    size_bytes: NonNegative
    ttl: NonNegative
    rolled_back_from: NonNegative
    tags: tuple[str, ...] = ()
    stored_bytes: NonNegative = 0
    state_crc: NonNegative = 0
    codec_id: NonNegative = 0

    @property
    def updated_at(self) -> datetime:
        """The write time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.updated_at_ms / 1000, tz=timezone.utc)


class ChunkHeader(msgspec.Struct, frozen=True, array_like=True):
    """A chunk's size before compression, and the dictionary it was compressed with (or b"")."""

    size_bytes: NonNegative
    dictionary: bytes = b""


class DictionaryHeader(msgspec.Struct, frozen=True, array_like=True):
    """A compression dictionary's own size before compression."""

    size_bytes: NonNegative


header_encoder = msgspec.msgpack.Encoder()


class _Decoders:
    version = msgspec.msgpack.Decoder(VersionHeader)
    chunk = msgspec.msgpack.Decoder(ChunkHeader)
    dictionary = msgspec.msgpack.Decoder(DictionaryHeader)


header_decoder = _Decoders()
