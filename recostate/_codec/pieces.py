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


_SIZES = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}


def _header(view: memoryview) -> tuple[int, bytes]:
    """Read a chunk header ``[size, dictionary id]`` (msgpack), the common shapes by hand.

    A chunk header is read once per chunk of every load; msgspec's decoder
    costs a few microseconds a call, this a fraction of that. Any other
    shape (valid msgpack all the same) goes to msgspec.
    """
    if len(view) >= 3 and view[0] == 0x92:
        first = view[1]
        if first < 0x80:
            size, at = first, 2
        else:
            width = _SIZES.get(first)
            if width is None:
                return _decoded(view)
            size, at = int.from_bytes(view[2 : 2 + width], "big"), 2 + width
        if at + 2 <= len(view) and view[at] == 0xC4 and at + 2 + view[at + 1] == len(view):
            return size, bytes(view[at + 2 :])
    return _decoded(view)


def _decoded(view: memoryview) -> tuple[int, bytes]:
    header = _chunk_header.decode(view)
    return header.size_bytes, header.dictionary


def unpack_chunks(
    pieces: Mapping[bytes, bytes],
    idents: Iterable[bytes],
    dictionaries: Mapping[bytes, bytes],
    check_ids: bool,
    check_crc: bool = True,
) -> dict[bytes, bytes]:
    """Return id -> raw bytes for each chunk in ``idents``, each checked.

    Each chunk's frame layout is checked, and its decompressed size.
    ``check_crc``: also each chunk's own CRC-32 (a load leaves it out: the
    whole state's CRC-32 covers every byte of every chunk once they are
    joined). ``check_ids``: also each chunk against its id (SHA-256), as a
    signed store does so that its signature covers every byte.

    Raises:
        ChunkError: a chunk is missing, fails its checksum, does not
            decompress, needs a dictionary not given, or is not what its id says.
    """
    unpack = _PREFIX.unpack_from
    crc32 = zlib.crc32
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
        if magic != frames.MAGIC or kind != _CHUNK or algorithm != _CRC or checksum_len != 4:
            raise ChunkError(f"piece {ident.hex()} is not a chunk")
        if check_crc and crc32(view[_SKIP:], crc32(view[: frames.PREFIX_SIZE])) != int.from_bytes(
            view[frames.PREFIX_SIZE : _SKIP], "big"
        ):
            raise ChunkError(f"piece {ident.hex()} fails its checksum")
        start = _SKIP + header_len
        try:
            size, dictionary_id = _header(view[_SKIP:start])
            dictionary = dictionaries[dictionary_id] if dictionary_id else b""
            raw = decompress(CODECS_BY_ID[codec_id], view[start:], size, dictionary)
        except (msgspec.DecodeError, KeyError, DecompressionError) as exc:
            raise ChunkError(f"piece {ident.hex()} does not decompress") from exc
        if check_ids and piece_id(CHUNK_TAG, raw) != ident:
            raise ChunkError(f"piece {ident.hex()} is not what its id says")
        out[ident] = raw
    return out
