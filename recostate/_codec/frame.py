"""The frame: the self-describing, checksummed unit of everything recostate stores.

Every stored value (a whole version, a chunked version's manifest, a chunk, a
manifest node, a compression dictionary) is one frame::

    offset  size  field
    0       2     magic b"RS"
    2       1     kind: 1 whole version, 2 chunked version (a manifest),
                  3 chunk, 4 manifest node, 5 compression dictionary
    3       1     codec of the payload: 0 none, 1 LZ4 (block, no stored size), 2 zlib
    4       1     checksum algorithm: 1 CRC-32, 2 HMAC-SHA256
    5       1     checksum length L (4 for CRC-32; 1 + K + 32 for HMAC-SHA256)
    6       4     header length H, unsigned big-endian
    10      L     checksum over bytes [0, 10) and [10 + L, end): prefix, header, payload;
                  or, signed: key id length K (1 byte), key id (K bytes), then the
                  HMAC-SHA256 over the state id (4-byte length, UTF-8) and every
                  byte of the frame but these last 32
    10+L    H     header: msgpack, its shape set by the kind (``recostate._codec.headers``)
    10+L+H  ...   payload

Frames of kind 1 are byte for byte the versions recostate 0.1 stored, so
everything written then still reads. This module only packs and unpacks
frames and checks their checksums; what goes in the header and the payload,
and when to compress or sign, is decided by ``recostate._codec.policy``. The
server-side scripts read the same prefix; the constants they need are
generated from the ones below (``recostate._storage.scripts``).
"""

from __future__ import annotations

import hmac
import struct
import zlib
from typing import Final

from recostate._signing import MAC_SIZE, MAX_KEY_ID_LENGTH, SigningKeys

__all__ = [
    "CRC32_ID",
    "HMAC_SHA256_ID",
    "KIND_CHUNK",
    "KIND_DICTIONARY",
    "KIND_MANIFEST",
    "KIND_NODE",
    "KIND_VERSION",
    "MAGIC",
    "PREFIX_SIZE",
    "FrameError",
    "ParsedFrame",
    "checksum_text",
    "digest_of",
    "pack",
    "parse",
]

MAGIC: Final = b"RS"
KIND_VERSION: Final = 1
KIND_MANIFEST: Final = 2
KIND_CHUNK: Final = 3
KIND_NODE: Final = 4
KIND_DICTIONARY: Final = 5
_KINDS: Final = frozenset((KIND_VERSION, KIND_MANIFEST, KIND_CHUNK, KIND_NODE, KIND_DICTIONARY))

CRC32_ID: Final = 1
HMAC_SHA256_ID: Final = 2

_PREFIX = struct.Struct(">2sBBBBI")
PREFIX_SIZE: Final = _PREFIX.size  # 10


class FrameError(ValueError):
    """A frame that cannot be read or whose checksum does not hold; the policy maps it."""


def bound_id(state_id: str) -> bytes:
    """Return the state id as a signature covers it (length first: no two ids run together)."""
    raw = state_id.encode("utf-8", "surrogatepass")
    return len(raw).to_bytes(4, "big") + raw


def pack(
    kind: int,
    codec_id: int,
    header: bytes,
    payload: bytes | memoryview,
    *,
    signing: SigningKeys | None = None,
    state_id: str = "",
) -> bytes:
    """Return the frame of ``header`` and ``payload``, with its CRC-32 or, given keys, its HMAC.

    ``state_id`` is the state the frame belongs to: a signature covers it, so a
    signed frame copied under another id does not verify.
    """
    if signing is None:
        prefix = _PREFIX.pack(MAGIC, kind, codec_id, CRC32_ID, 4, len(header))
        # The same bytes verify() covers, computed piecewise so the payload is copied once.
        crc = zlib.crc32(payload, zlib.crc32(header, zlib.crc32(prefix)))
        digest = crc.to_bytes(4, "big")
    else:
        key_field = signing.field(signing.signing_id)
        prefix = _PREFIX.pack(
            MAGIC, kind, codec_id, HMAC_SHA256_ID, len(key_field) + MAC_SIZE, len(header)
        )
        mac = signing.signer()
        for part in (bound_id(state_id), prefix, key_field, header, payload):
            mac.update(part)
        digest = key_field + mac.digest()
    return b"".join((prefix, digest, header, payload))


class ParsedFrame:
    """The parts of a frame, as views into it; nothing verified yet but the layout."""

    __slots__ = ("algorithm", "codec_id", "digest", "frame", "header", "key_id", "kind", "payload")

    def __init__(
        self,
        frame: bytes | memoryview,
        kind: int,
        codec_id: int,
        algorithm: int,
        digest: bytes,
        key_id: str | None,
        header: memoryview,
        payload: memoryview,
    ) -> None:
        self.frame = frame
        self.kind = kind
        self.codec_id = codec_id
        self.algorithm = algorithm
        self.digest = digest
        self.key_id = key_id
        self.header = header
        self.payload = payload

    @property
    def checksum(self) -> str:
        """The checksum as metadata shows it: ``crc32:<hex>`` or ``hmac-sha256:<key id>:<hex>``."""
        return checksum_text(self.digest)

    def verify_crc(self) -> bool:
        """Tell whether the CRC-32 of an unsigned frame holds."""
        view = memoryview(self.frame)
        crc = zlib.crc32(view[:PREFIX_SIZE])
        crc = zlib.crc32(view[PREFIX_SIZE + 4 :], crc)
        return crc.to_bytes(4, "big") == self.digest

    def verify_signature(self, signing: SigningKeys, state_id: str) -> bool:
        """Tell whether the HMAC of a signed frame holds under a key ``signing`` holds."""
        mac = signing.verifier(self.key_id) if self.key_id is not None else None
        if mac is None:
            return False
        view = memoryview(self.frame)
        end = PREFIX_SIZE + len(self.digest)
        mac.update(bound_id(state_id))
        mac.update(view[: end - MAC_SIZE])
        mac.update(view[end:])
        return hmac.compare_digest(mac.digest(), view[end - MAC_SIZE : end])


def digest_of(frame: bytes) -> bytes:
    """Return the checksum field of a frame :func:`pack` made (its layout is not checked)."""
    return frame[PREFIX_SIZE : PREFIX_SIZE + frame[5]]


def checksum_text(digest: bytes) -> str:
    """Return a checksum field as text."""
    if len(digest) == 4:
        return "crc32:" + digest.hex()
    key_id = digest[1 : len(digest) - MAC_SIZE].decode("ascii")
    return f"hmac-sha256:{key_id}:{digest[-MAC_SIZE:].hex()}"


def _key_id(digest: bytes, checksum_len: int) -> str:
    key_len = digest[0] if digest else -1
    if checksum_len != 1 + key_len + MAC_SIZE or not 1 <= key_len <= MAX_KEY_ID_LENGTH:
        raise FrameError("signed frame with a malformed key id")
    try:
        key_id = digest[1 : 1 + key_len].decode("ascii")
    except UnicodeDecodeError:
        raise FrameError("signed frame with a malformed key id") from None
    if not key_id.isprintable():
        raise FrameError("signed frame with a malformed key id")
    return key_id


def parse(frame: bytes | memoryview, *, partial: bool = False) -> ParsedFrame:
    """Split ``frame`` into its parts, checking only its layout.

    ``partial``: ``frame`` is the start of a stored frame (header reads), so
    its payload may be cut short.
    """
    try:
        magic, kind, codec_id, algorithm, checksum_len, header_len = _PREFIX.unpack_from(frame)
    except struct.error:
        raise FrameError("frame shorter than its prefix") from None
    if magic != MAGIC or kind not in _KINDS:
        raise FrameError("unknown frame layout")
    start = PREFIX_SIZE + checksum_len
    view = memoryview(frame)
    digest = bytes(view[PREFIX_SIZE:start])
    if len(digest) != checksum_len:
        raise FrameError("frame shorter than its checksum")
    key_id: str | None = None
    if algorithm == CRC32_ID and checksum_len == 4:
        pass
    elif algorithm == HMAC_SHA256_ID:
        key_id = _key_id(digest, checksum_len)
    else:
        raise FrameError("unknown checksum algorithm")
    end = start + header_len
    if end > len(view) and not partial:
        raise FrameError("frame shorter than its header")
    return ParsedFrame(
        frame, kind, codec_id, algorithm, digest, key_id, view[start:end], view[end:]
    )
