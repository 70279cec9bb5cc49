"""Compression of payloads: LZ4 (block) or zlib, optionally primed with a dictionary.

The only module that imports ``lz4`` and compresses. Decompression is always
bounded by the size the (checksummed) header announces, so a damaged or
forged payload can never make recostate allocate more than that.
"""

from __future__ import annotations

import zlib
from typing import Final

import lz4.block

from recostate._types import CompressionType

__all__ = ["CODEC_IDS", "CODECS_BY_ID", "DecompressionError", "compress", "decompress"]

CODEC_IDS: Final = {CompressionType.NONE: 0, CompressionType.LZ4: 1, CompressionType.ZLIB: 2}
CODECS_BY_ID: Final = {value: key for key, value in CODEC_IDS.items()}

# zlib's default level: its speed and ratio are the usual trade-off.
_ZLIB_LEVEL = 6


class DecompressionError(ValueError):
    """A payload that does not decompress to the size its header announces."""


def compress(
    codec: CompressionType, raw: bytes | memoryview, dictionary: bytes = b""
) -> tuple[CompressionType, bytes | memoryview]:
    """Return ``raw`` compressed with ``codec``, or as it is (``NONE``) when it would not shrink."""
    if codec is CompressionType.NONE:
        return CompressionType.NONE, raw
    if codec is CompressionType.LZ4:
        packed = (
            lz4.block.compress(raw, store_size=False, dict=dictionary)
            if dictionary
            else lz4.block.compress(raw, store_size=False)
        )
    else:
        packer = (
            zlib.compressobj(_ZLIB_LEVEL, zdict=dictionary)
            if dictionary
            else zlib.compressobj(_ZLIB_LEVEL)
        )
        packed = packer.compress(raw) + packer.flush()
    if len(packed) >= len(raw):
        return CompressionType.NONE, raw
    return codec, packed


def decompress(
    codec: CompressionType, payload: bytes | memoryview, size: int, dictionary: bytes = b""
) -> bytes:
    """Return the ``size`` bytes ``payload`` holds; ``DecompressionError`` on anything else."""
    complete = True
    try:
        if codec is CompressionType.NONE:
            raw = bytes(payload)
        elif codec is CompressionType.LZ4:
            raw = (
                lz4.block.decompress(payload, uncompressed_size=size, dict=dictionary)
                if dictionary
                else lz4.block.decompress(payload, uncompressed_size=size)
            )
        else:
            inflater = zlib.decompressobj(zdict=dictionary) if dictionary else zlib.decompressobj()
            # Bounded: a frame can never make us inflate more than it announces.
            raw = inflater.decompress(payload, size + 1)
            complete = inflater.eof
    except (ValueError, OverflowError, MemoryError, zlib.error, lz4.block.LZ4BlockError) as exc:
        raise DecompressionError(f"payload does not decompress: {type(exc).__name__}") from exc
    if codec is CompressionType.ZLIB and not complete:
        raise DecompressionError("zlib stream longer than announced")
    if len(raw) != size:
        raise DecompressionError("decompressed size differs from the header")
    return raw
