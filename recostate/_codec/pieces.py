"""Reading many chunks at once: the hot loop of loading a chunked version.

A ~1 MiB state is several hundred chunks, so what is done once per chunk
decides how fast a chunked state loads. This loop checks each chunk's frame
(layout and CRC-32) and decompresses it with the state's dictionary, with no
work per chunk that a whole frame would not need once.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping

import msgspec

from recostate._codec import frame as frames
from recostate._codec.compression import CODECS_BY_ID, DecompressionError, decompress
from recostate._codec.headers import ChunkHeader
from recostate._codec.manifest import CHUNK_TAG, piece_id

__all__ = ["ChunkError", "unpack_chunks"]

_PREFIX = struct.Struct(">2sBBBBI")
_CHUNK = frames.KIND_CHUNK
_CRC = frames.CRC32_ID
_SKIP = frames.PREFIX_SIZE + 4  # prefix and CRC-32: the header follows
_chunk_header = msgspec.msgpack.Decoder(ChunkHeader)


class ChunkError(ValueError):
    """A chunk that is missing, damaged, or not what its id says."""


def unpack_chunks(
    pieces: Mapping[bytes, bytes],
    idents: Iterable[bytes],
    dictionaries: Mapping[bytes, bytes],
    check_ids: bool,
) -> dict[bytes, bytes]:
    """Return id -> raw bytes for each chunk in ``idents``, each checked.

    ``check_ids``: also check each chunk against its id (SHA-256), as a
    signed store does so that its signature covers every byte.

    Raises:
        ChunkError: a chunk is missing, fails its checksum, does not
            decompress, needs a dictionary not given, or is not what its id says.
    """
    unpack = _PREFIX.unpack_from
    crc32 = zlib.crc32
    decode_header = _chunk_header.decode
    out: dict[bytes, bytes] = {}
    for ident in idents:
        if ident in out:
            continue
        data = pieces.get(ident)
        if data is None:
            raise ChunkError(f"piece {ident.hex()} is missing")
        try:
            magic, kind, codec_id, algorithm, checksum_len, header_len = unpack(data)
        except struct.error:
            raise ChunkError(f"piece {ident.hex()} is unreadable") from None
        view = memoryview(data)
        if (
            magic != frames.MAGIC
            or kind != _CHUNK
            or algorithm != _CRC
            or checksum_len != 4
            or crc32(view[_SKIP:], crc32(view[: frames.PREFIX_SIZE]))
            != int.from_bytes(view[frames.PREFIX_SIZE : _SKIP], "big")
        ):
            raise ChunkError(f"piece {ident.hex()} fails its checksum")
        start = _SKIP + header_len
        try:
            header = decode_header(view[_SKIP:start])
            dictionary = dictionaries[header.dictionary] if header.dictionary else b""
            raw = decompress(CODECS_BY_ID[codec_id], view[start:], header.size_bytes, dictionary)
        except (msgspec.DecodeError, KeyError, DecompressionError) as exc:
            raise ChunkError(f"piece {ident.hex()} does not decompress") from exc
        if check_ids and piece_id(CHUNK_TAG, raw) != ident:
            raise ChunkError(f"piece {ident.hex()} is not what its id says")
        out[ident] = raw
    return out
