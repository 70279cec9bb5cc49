"""Turning states into stored bytes and back: msgpack, compression, checksum, framing.

A stored version is one *frame*::

    offset  size  field
    0       2     magic b"RS"
    2       1     frame format (1)
    3       1     codec of the payload: 0 none, 1 LZ4 (block, no stored size), 2 zlib
    4       1     checksum algorithm: 1 CRC-32, 2 HMAC-SHA256 (a store with ``signing_key``)
    5       1     checksum length L (4 for CRC-32; 1 + K + 32 for HMAC-SHA256)
    6       4     header length H, unsigned big-endian
    10      L     checksum over bytes [0, 10) and [10 + L, end): prefix, header, payload;
                  or, signed: key id length K (1 byte), key id (K bytes), then the
                  HMAC-SHA256 over the state id (4-byte length, UTF-8) and every
                  byte of the frame but these last 32
    10+L    H     header, a msgpack array:
                  [updated_at_ms, size_bytes, ttl or 0, rolled_back_from or 0, [tags...]]
    10+L+H  ...   payload: the msgpack-encoded state, compressed by the codec

The frame names its own codec, so any store reads any frame. The header is
covered by the checksum, so a flipped bit anywhere is an :class:`IntegrityError`.
A store with ``signing_key`` (see ``recostate._signing``) writes and accepts
signed frames only; a store without one refuses signed frames, since it cannot
check them. Either refusal is an :class:`IntegrityError` that says why.
The server-side scripts read the same header (``cmsgpack``) to keep the head's
readable metadata; ``recostate._scripts`` holds their half of this layout.

Encoding of the state (msgspec) runs on the calling thread: it holds the GIL
whichever thread runs it, so moving it would not shorten the event loop's stall.
Compression and the checksum release the GIL, so above ``offload_threshold``
they run in a worker thread (``anyio.to_thread``), as does the whole decode.
States are never pickled, and decoding never runs code.
"""

from __future__ import annotations

import hmac
import struct
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any, Final, TypeVar

import anyio
import anyio.to_thread
import lz4.block
import msgspec

from recostate import _models as models
from recostate._config import MAX_PAYLOAD_CEILING
from recostate._errors import IntegrityError, PayloadTooLargeError, SerializationError
from recostate._signing import MAC_SIZE, MAX_KEY_ID_LENGTH, SigningKeys
from recostate._types import CompressionType

__all__ = ["Codec", "EncodedFrame", "FrameHeader"]

MAGIC: Final = b"RS"
FRAME_FORMAT: Final = 1
_PREFIX = struct.Struct(">2sBBBBI")
PREFIX_SIZE: Final = _PREFIX.size  # 10
CRC32_ID: Final = 1
HMAC_SHA256_ID: Final = 2

_CODEC_IDS: Final = {CompressionType.NONE: 0, CompressionType.LZ4: 1, CompressionType.ZLIB: 2}
_CODECS_BY_ID: Final = {value: key for key, value in _CODEC_IDS.items()}

T = TypeVar("T")


# A header field a forged or damaged frame could make negative.
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class FrameHeader(msgspec.Struct, frozen=True, array_like=True):
    """The per-version metadata carried inside a frame."""

    updated_at_ms: NonNegative
    size_bytes: NonNegative
    ttl: NonNegative  # 0: no expiry (msgpack nil would leave a hole in a Lua table)
    rolled_back_from: NonNegative  # 0: not a rollback
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
    if len(digest) == 4:
        return "crc32:" + digest.hex()
    key_id = digest[1 : len(digest) - MAC_SIZE].decode("ascii")
    return f"hmac-sha256:{key_id}:{digest[-MAC_SIZE:].hex()}"


def _bound_id(state_id: str) -> bytes:
    """Return the state id as a signature covers it (length first: no two ids run together)."""
    raw = state_id.encode("utf-8", "surrogatepass")
    return len(raw).to_bytes(4, "big") + raw


class _Layout(msgspec.Struct, frozen=True):
    parsed: ParsedFrame
    checksum_len: int
    header_len: int
    key_id: str | None


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
        signing: SigningKeys | None = None,
    ) -> None:
        self.compression = compression
        self.signing = signing
        self.compression_threshold = compression_threshold
        self.offload_threshold = offload_threshold
        self.max_payload_bytes = max_payload_bytes
        self._limiter = thread_limiter
        self._encoder = msgspec.msgpack.Encoder(enc_hook=models.enc_hook)
        self._decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}

    # -- encoding ---------------------------------------------------------------------

    def encode_state(self, state: object) -> bytes:
        """Return the msgpack bytes of ``state``, or raise ``SerializationError``."""
        try:
            raw = self._encoder.encode(state)
        except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError) as exc:
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
        self,
        header: FrameHeader,
        compression: CompressionType,
        payload: bytes | memoryview,
        state_id: str = "",
    ) -> EncodedFrame:
        head = _header_encoder.encode(header)
        codec_id = _CODEC_IDS[compression]
        if self.signing is None:
            prefix = _PREFIX.pack(MAGIC, FRAME_FORMAT, codec_id, CRC32_ID, 4, len(head))
            # Same bytes as _checksum() covers, computed piecewise to copy the payload once.
            crc = zlib.crc32(payload, zlib.crc32(head, zlib.crc32(prefix)))
            digest = crc.to_bytes(4, "big")
        else:
            key_field = self.signing.field(self.signing.signing_id)
            prefix = _PREFIX.pack(
                MAGIC, FRAME_FORMAT, codec_id, HMAC_SHA256_ID, len(key_field) + MAC_SIZE, len(head)
            )
            mac = self.signing.signer()
            for part in (_bound_id(state_id), prefix, key_field, head, payload):
                mac.update(part)
            digest = key_field + mac.digest()
        data = b"".join((prefix, digest, head, payload))
        return EncodedFrame(
            data, ParsedFrame(header, compression, _checksum_text(digest), len(data))
        )

    def build_frame(self, raw: bytes, header: FrameHeader, state_id: str = "") -> EncodedFrame:
        """Compress ``raw`` and frame it with ``header`` and its checksum.

        ``state_id`` is the state the frame is for: a signature covers it, so a
        signed frame copied under another state's id fails to verify.
        """
        compression, payload = self._compress(raw)
        return self._assemble(header, compression, payload, state_id)

    async def encode(
        self, state: object, header_of: Callable[[int], FrameHeader], state_id: str = ""
    ) -> EncodedFrame:
        """Encode ``state`` into a frame for ``state_id``; ``header_of(size_bytes)`` gives its header.

        Compression and checksum run in a worker thread above ``offload_threshold``.
        """
        raw = self.encode_state(state)
        header = header_of(len(raw))
        if len(raw) >= self.offload_threshold:
            return await self._in_thread(self.build_frame, raw, header, state_id)
        return self.build_frame(raw, header, state_id)

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
            return self._assemble(header_of(parsed.header), parsed.compression, payload, state_id)

        if len(frame) >= self.offload_threshold:
            return await self._in_thread(work)
        return work()

    # -- decoding ---------------------------------------------------------------------

    def parse_header(
        self, frame: bytes, state_id: str, version: int | None, stored_bytes: int | None = None
    ) -> ParsedFrame:
        """Read the header of a frame (or of its first bytes), without verifying the payload.

        ``stored_bytes`` is the whole frame's size when ``frame`` holds only its start.
        A frame signed when this store does not sign, or the reverse, or signed
        with a key this store does not hold, is an ``IntegrityError`` already here.
        """
        return self._layout(frame, state_id, version, stored_bytes).parsed

    def _key_id(self, digest: bytes, checksum_len: int) -> str:
        key_len = digest[0] if digest else -1
        if checksum_len != 1 + key_len + MAC_SIZE or not 1 <= key_len <= MAX_KEY_ID_LENGTH:
            raise ValueError("signed frame with a malformed key id")
        key_id = digest[1 : 1 + key_len].decode("ascii")
        if not key_id.isprintable():
            raise ValueError("signed frame with a malformed key id")
        return key_id

    def _layout(
        self, frame: bytes, state_id: str, version: int | None, stored_bytes: int | None = None
    ) -> _Layout:
        key_id: str | None = None
        try:
            magic, fmt, codec_id, algo, checksum_len, header_len = _PREFIX.unpack_from(frame)
            if magic != MAGIC or fmt != FRAME_FORMAT:
                raise ValueError("unknown frame layout")
            start = PREFIX_SIZE + checksum_len
            digest = bytes(frame[PREFIX_SIZE:start])
            if algo == CRC32_ID and checksum_len == 4:
                pass
            elif algo == HMAC_SHA256_ID:
                key_id = self._key_id(digest, checksum_len)
            else:
                raise ValueError("unknown frame layout")
            header = _header_decoder.decode(frame[start : start + header_len])
            # Metadata reads do not verify the checksum: a damaged timestamp
            # must still be an IntegrityError, not datetime's own error later.
            header.updated_at  # noqa: B018
            compression = _CODECS_BY_ID[codec_id]
        except (
            struct.error,
            ValueError,
            OverflowError,
            OSError,
            KeyError,
            IndexError,
            msgspec.DecodeError,
        ) as exc:
            raise IntegrityError(state_id, version, "unreadable frame header") from exc
        if self.signing is not None:
            if key_id is None:
                raise IntegrityError(
                    state_id, version, "the frame is not signed, and this store accepts signed frames only"
                )
            if self.signing.verifier(key_id) is None:
                raise IntegrityError(
                    state_id,
                    version,
                    f"the frame is signed with key id {key_id!r}, which this store does not hold",
                )
        elif key_id is not None:
            raise IntegrityError(
                state_id,
                version,
                f"the frame is signed (key id {key_id!r}), and this store has no signing_key to check it",
            )
        size = len(frame) if stored_bytes is None else stored_bytes
        parsed = ParsedFrame(header, compression, _checksum_text(digest), size)
        return _Layout(parsed, checksum_len, header_len, key_id)

    def _verified(
        self, frame: bytes, state_id: str, version: int
    ) -> tuple[ParsedFrame, memoryview]:
        layout = self._layout(frame, state_id, version)
        view = memoryview(frame)
        end = PREFIX_SIZE + layout.checksum_len
        if layout.key_id is None:
            if view[PREFIX_SIZE:end] != _checksum(view, 4):
                raise IntegrityError(state_id, version, "checksum mismatch")
        else:
            assert self.signing is not None  # _layout refused signed frames otherwise
            mac = self.signing.verifier(layout.key_id)
            assert mac is not None
            mac.update(_bound_id(state_id))
            mac.update(view[: end - MAC_SIZE])
            mac.update(view[end:])
            if not hmac.compare_digest(mac.digest(), view[end - MAC_SIZE : end]):
                raise IntegrityError(state_id, version, "signature mismatch")
        return layout.parsed, view[end + layout.header_len :]

    def _decompress(self, parsed: ParsedFrame, payload: memoryview) -> bytes:
        size = parsed.header.size_bytes
        if size > MAX_PAYLOAD_CEILING:
            # No store writes more; refuse before allocating what a header claims.
            raise ValueError("announced size over the largest payload any store writes")
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
                msgspec.msgpack.Decoder(type_, dec_hook=models.dec_hook)
                if type_ is not None
                else msgspec.msgpack.Decoder()
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
        except (ValueError, OverflowError, MemoryError, zlib.error, lz4.block.LZ4BlockError) as exc:
            raise IntegrityError(state_id, version, "payload does not decompress") from exc
        try:
            return self._decoder(None).decode(raw) if type_ is None else self._decode_typed(
                raw, type_
            ), parsed
        except (msgspec.DecodeError, RecursionError) as exc:
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
