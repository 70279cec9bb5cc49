"""Turning states into stored bytes and back: msgpack, compression, checksum, framing.

A stored version is one *frame*::

    offset  size  field
    0       2     magic b"RS"
    2       1     frame format (1)
    3       1     codec of the payload: 0 none, 1 LZ4 (block, no stored size), 2 zlib
    4       1     checksum algorithm: 1 CRC-32
    5       1     checksum length L
    6       4     header length H, unsigned big-endian
    10      L     checksum over bytes [0, 10) and [10 + L, end): prefix, header, payload
    10+L    H     header, a msgpack array:
                  [updated_at_ms, size_bytes, ttl or 0, rolled_back_from or 0, [tags...]]
    10+L+H  ...   payload: the msgpack-encoded state, compressed by the codec

The frame names its own codec, so any store reads any frame. The header is
covered by the checksum, so a flipped bit anywhere is an :class:`IntegrityError`.
The server-side scripts read the same header (``cmsgpack``) to keep the head's
readable metadata; ``recostate._scripts`` holds their half of this layout.

Encoding of the state (msgspec) runs on the calling thread: it holds the GIL
whichever thread runs it, so moving it would not shorten the event loop's stall.
Compression and the checksum release the GIL, so above ``offload_threshold``
they run in a worker thread (``anyio.to_thread``), as does the whole decode.
States are never pickled, and decoding never runs code.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread
import lz4.block
import msgspec

from recostate._errors import IntegrityError, PayloadTooLargeError, SerializationError
from recostate._types import CompressionType

__all__ = [
    "MAX_FRAME_OVERHEAD",
    "Codec",
    "EncodedFrame",
    "FrameHeader",
    "HEADER_PROBE_BYTES",
]

MAGIC: Final = b"RS"
FRAME_FORMAT: Final = 1
_PREFIX = struct.Struct(">2sBBBBI")
PREFIX_SIZE: Final = _PREFIX.size  # 10
CRC32_ID: Final = 1
#: Bytes a reader fetches to be sure to hold a typical frame's header.
HEADER_PROBE_BYTES: Final = 512
#: An upper bound of the frame's bytes beyond its payload, tags aside.
MAX_FRAME_OVERHEAD: Final = PREFIX_SIZE + 4 + 64

_CODEC_IDS: Final = {CompressionType.NONE: 0, CompressionType.LZ4: 1, CompressionType.ZLIB: 2}
_CODECS_BY_ID: Final = {value: key for key, value in _CODEC_IDS.items()}

T = TypeVar("T")


class FrameHeader(msgspec.Struct, frozen=True, array_like=True):
    """The per-version metadata carried inside a frame."""

    updated_at_ms: int
    size_bytes: int
    ttl: int  # 0: no expiry (msgpack nil would leave a hole in a Lua table)
    rolled_back_from: int  # 0: not a rollback
    tags: tuple[str, ...] = ()

    @property
    def updated_at(self) -> datetime:
        """The write time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.updated_at_ms / 1000, tz=timezone.utc)


class ParsedFrame(msgspec.Struct, frozen=True):
    """A frame's header fields, read without touching the payload."""

    header: FrameHeader
    compression: CompressionType
    checksum: str
    stored_bytes: int


class EncodedFrame(msgspec.Struct, frozen=True):
    """A frame ready to store, with its parsed fields."""

    data: bytes
    info: ParsedFrame


_header_encoder = msgspec.msgpack.Encoder()
_header_decoder = msgspec.msgpack.Decoder(FrameHeader)


def now_ms() -> int:
    """Return the current UTC time in whole milliseconds."""
    return int(datetime.now(timezone.utc).timestamp() * 1000)


def _checksum(frame: memoryview, checksum_len: int) -> bytes:
    crc = zlib.crc32(frame[:PREFIX_SIZE])
    crc = zlib.crc32(frame[PREFIX_SIZE + checksum_len :], crc)
    return crc.to_bytes(4, "big")


def _checksum_text(digest: bytes) -> str:
    return "crc32:" + digest.hex()


class Codec:
    """Encodes states into frames and decodes frames into states, for one store's settings."""

    def __init__(
        self,
        *,
        compression: CompressionType,
        compression_threshold: int,
        offload_threshold: int,
        max_payload_bytes: int,
        thread_limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.compression = compression
        self.compression_threshold = compression_threshold
        self.offload_threshold = offload_threshold
        self.max_payload_bytes = max_payload_bytes
        self._limiter = thread_limiter
        self._encoder = msgspec.msgpack.Encoder()
        self._decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}

    # -- encoding ---------------------------------------------------------------------

    def encode_state(self, state: object) -> bytes:
        """Return the msgpack bytes of ``state``, or raise ``SerializationError``."""
        try:
            raw = self._encoder.encode(state)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
            # The message names the type, never the value.
            raise SerializationError(
                f"cannot encode a state of type {type(state).__name__}: {type(exc).__name__}"
            ) from exc
        if len(raw) > self.max_payload_bytes:
            raise PayloadTooLargeError(len(raw), self.max_payload_bytes)
        return raw

    def _compress(self, raw: bytes) -> tuple[CompressionType, bytes]:
        if self.compression is CompressionType.NONE or len(raw) < self.compression_threshold:
            return CompressionType.NONE, raw
        if self.compression is CompressionType.LZ4:
            packed = lz4.block.compress(raw, store_size=False)
        else:
            packed = zlib.compress(raw, 6)
        if len(packed) >= len(raw):
            return CompressionType.NONE, raw
        return self.compression, packed

    def _assemble(
        self, header: FrameHeader, compression: CompressionType, payload: bytes | memoryview
    ) -> EncodedFrame:
        head = _header_encoder.encode(header)
        prefix = _PREFIX.pack(MAGIC, FRAME_FORMAT, _CODEC_IDS[compression], CRC32_ID, 4, len(head))
        # Same bytes as _checksum() covers, computed piecewise to copy the payload once.
        crc = zlib.crc32(payload, zlib.crc32(head, zlib.crc32(prefix)))
        digest = crc.to_bytes(4, "big")
        data = b"".join((prefix, digest, head, payload))
        return EncodedFrame(
            data, ParsedFrame(header, compression, _checksum_text(digest), len(data))
        )

    def build_frame(self, raw: bytes, header: FrameHeader) -> EncodedFrame:
        """Compress ``raw`` and frame it with ``header`` and its checksum."""
        compression, payload = self._compress(raw)
        return self._assemble(header, compression, payload)

    async def encode(self, state: object, header_of: Callable[[int], FrameHeader]) -> EncodedFrame:
        """Encode ``state`` into a frame; ``header_of(size_bytes)`` gives its header.

        Compression and checksum run in a worker thread above ``offload_threshold``.
        """
        raw = self.encode_state(state)
        header = header_of(len(raw))
        if len(raw) >= self.offload_threshold:
            return await self._in_thread(self.build_frame, raw, header)
        return self.build_frame(raw, header)

    async def reframe(
        self,
        frame: bytes,
        header_of: Callable[[FrameHeader], FrameHeader],
        state_id: str,
        version: int,
    ) -> EncodedFrame:
        """Return ``frame``'s payload in a new frame, verifying it first.

        ``header_of(old_header)`` gives the new header. Used by rollback: the
        payload is copied, never decoded or recompressed.
        """

        def work() -> EncodedFrame:
            parsed, payload = self._verified(frame, state_id, version)
            return self._assemble(header_of(parsed.header), parsed.compression, payload)

        if len(frame) >= self.offload_threshold:
            return await self._in_thread(work)
        return work()

    # -- decoding ---------------------------------------------------------------------

    def parse_header(
        self, frame: bytes, state_id: str, version: int | None, stored_bytes: int | None = None
    ) -> ParsedFrame:
        """Read the header of a frame (or of its first bytes), without verifying the payload.

        ``stored_bytes`` is the whole frame's size when ``frame`` holds only its start.
        """
        try:
            magic, fmt, codec_id, algo, checksum_len, header_len = _PREFIX.unpack_from(frame)
            if magic != MAGIC or fmt != FRAME_FORMAT or algo != CRC32_ID or checksum_len != 4:
                raise ValueError("unknown frame layout")
            start = PREFIX_SIZE + checksum_len
            header = _header_decoder.decode(frame[start : start + header_len])
            compression = _CODECS_BY_ID[codec_id]
            digest = frame[PREFIX_SIZE:start]
        except (struct.error, ValueError, KeyError, msgspec.DecodeError) as exc:
            raise IntegrityError(state_id, version, "unreadable frame header") from exc
        size = len(frame) if stored_bytes is None else stored_bytes
        return ParsedFrame(header, compression, _checksum_text(digest), size)

    def _verified(
        self, frame: bytes, state_id: str, version: int
    ) -> tuple[ParsedFrame, memoryview]:
        parsed = self.parse_header(frame, state_id, version)
        view = memoryview(frame)
        if view[PREFIX_SIZE : PREFIX_SIZE + 4] != _checksum(view, 4):
            raise IntegrityError(state_id, version, "checksum mismatch")
        header_len = _PREFIX.unpack_from(frame)[5]
        return parsed, view[PREFIX_SIZE + 4 + header_len :]

    def _decompress(self, parsed: ParsedFrame, payload: memoryview) -> bytes:
        size = parsed.header.size_bytes
        if parsed.compression is CompressionType.NONE:
            raw = bytes(payload)
        elif parsed.compression is CompressionType.LZ4:
            raw = lz4.block.decompress(payload, uncompressed_size=size)
        else:
            inflater = zlib.decompressobj()
            # Bounded: a frame can never make us inflate more than it announces.
            raw = inflater.decompress(payload, size + 1)
            if not inflater.eof:
                raise ValueError("zlib stream longer than announced")
        if len(raw) != size:
            raise ValueError("decompressed size differs from the header")
        return raw

    def _decoder(self, type_: Any) -> msgspec.msgpack.Decoder[Any]:
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = (
                msgspec.msgpack.Decoder(type_) if type_ is not None else msgspec.msgpack.Decoder()
            )
            self._decoders[type_] = decoder
        return decoder

    def decode_frame(
        self, frame: bytes, state_id: str, version: int, type_: Any = None
    ) -> tuple[Any, ParsedFrame]:
        """Verify and decode ``frame``; ``IntegrityError`` on any corruption."""
        parsed, payload = self._verified(frame, state_id, version)
        try:
            raw = self._decompress(parsed, payload)
        except (ValueError, MemoryError, zlib.error, lz4.block.LZ4BlockError) as exc:
            raise IntegrityError(state_id, version, "payload does not decompress") from exc
        try:
            return self._decoder(None).decode(raw) if type_ is None else self._decode_typed(
                raw, type_
            ), parsed
        except msgspec.DecodeError as exc:
            raise IntegrityError(state_id, version, "payload does not decode") from exc

    def _decode_typed(self, raw: bytes, type_: Any) -> Any:
        try:
            return self._decoder(type_).decode(raw)
        except msgspec.ValidationError as exc:
            # The bytes are sound (checksum held); they just are not a `type_`.
            raise SerializationError(
                f"stored state does not match the requested type: {exc}"
            ) from exc

    async def decode(
        self, frame: bytes, state_id: str, version: int, type_: Any = None
    ) -> tuple[Any, ParsedFrame]:
        """Verify and decode ``frame``, in a worker thread above ``offload_threshold``."""
        if len(frame) >= self.offload_threshold:
            return await self._in_thread(self.decode_frame, frame, state_id, version, type_)
        return self.decode_frame(frame, state_id, version, type_)

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)
