"""The codec of one store: states to stored frames and back, under the store's settings.

What it decides (the frame layout itself is ``recostate._codec.frame``):

* **Whole or chunked.** An encoded state under ``chunk_threshold`` is one
  frame (kind 1). From the threshold on, it is cut into chunks
  (``recostate._codec.chunking``) named by a manifest tree
  (``recostate._codec.manifest``); the version's frame (kind 2) holds the
  manifest, and only the pieces the server does not hold yet are compressed
  and sent.
* **Compression.** LZ4 or zlib above ``compression_threshold``, kept only
  when it shrinks the payload. Chunks are small, and small inputs compress
  badly on their own, so each state has a *dictionary* (the first few KiB of
  its chunked content) that primes the compressor of every chunk; it is
  stored once per state and chosen by the first save large enough to need one.
* **Checksums.** Every frame carries a CRC-32; a store with ``signing_key``
  signs its version frames with HMAC-SHA256 instead. A chunked version's
  header also holds the CRC-32 of the whole encoded state, and under a
  signing key every piece is checked against its id (a SHA-256 of its
  contents that the signed manifest covers), so a signature covers every
  byte of the state.
* **Threads.** Encoding (msgspec) runs on the caller's thread: it holds the
  GIL wherever it runs. Above ``offload_threshold`` the rest (cutting,
  hashing, compressing, checking, decoding) runs in a worker thread
  (``anyio.to_thread``), so the event loop keeps running between its steps.

States are never pickled, and decoding never runs code.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

import anyio.to_thread
import msgspec

from recostate._codec import frame as frames
from recostate._codec.chunking import ChunkingParams
from recostate._codec.compression import (
    CODEC_IDS,
    CODECS_BY_ID,
    DecompressionError,
    compress,
    decompress,
)
from recostate._codec.headers import (
    ChunkHeader,
    DictionaryHeader,
    VersionHeader,
    header_decoder,
    header_encoder,
)
from recostate._codec.manifest import (
    CHUNK_TAG,
    NODE_TAG,
    ChunkPlan,
    ManifestError,
    TreeParams,
    body_refs,
    expand,
    piece_id,
    plan,
)
from recostate._codec.states import StateCodec, UndecodableState
from recostate._config import MAX_PAYLOAD_CEILING
from recostate._errors import IntegrityError
from recostate._signing import SigningKeys
from recostate._types import CompressionType

__all__ = [
    "DICTIONARY_MIN_CONTENT",
    "DICTIONARY_SIZE",
    "Codec",
    "EncodedVersion",
    "KnownPieces",
    "StoredVersion",
    "VersionInfo",
    "now_ms",
]

T = TypeVar("T")

_DICTIONARY_TAG = b"\x05"

#: The most bytes of a state's content its compression dictionary holds.
DICTIONARY_SIZE = 4096
#: A state gets a dictionary once its chunks hold this much: below it, the
#: dictionary would cost more than it saves.
DICTIONARY_MIN_CONTENT = 2 * DICTIONARY_SIZE


def now_ms() -> int:
    """Return the current UTC time in whole milliseconds."""
    return int(datetime.now(timezone.utc).timestamp() * 1000)


@dataclass
class KnownPieces:
    """What this client believes the server holds of one state's pieces.

    Attributes:
        sizes: piece id -> size of its stored frame.
        dictionary_id: the id of the state's dictionary (``b""``: none known).
        dictionary: that dictionary's contents.
    """

    sizes: dict[bytes, int] = field(default_factory=dict)
    dictionary_id: bytes = b""
    dictionary: bytes = b""


class VersionInfo(msgspec.Struct, frozen=True):
    """What a version's frame says about it, read without its payload.

    Attributes:
        header: the version header.
        compression: the codec of its payload (of its chunks, for a chunked version).
        checksum: the frame's checksum as text.
        stored_bytes: its size as stored (with every piece it refers to, when chunked).
        chunked: whether it is a chunked version.
    """

    header: VersionHeader
    compression: CompressionType
    checksum: str
    stored_bytes: int
    chunked: bool


class EncodedVersion(msgspec.Struct):
    """A version ready to send, with what the known-pieces memory learns once it is stored.

    Attributes:
        frame: the version's frame (whole, or its manifest).
        info: its metadata.
        pieces: the pieces to send: ``(id, frame)``, nodes before the chunks they name.
        refs: for a chunked version, every piece it refers to and its stored size.
        dictionary_id: the state's dictionary, which its new chunks were
            compressed with (``b""``: none).
        dictionary: that dictionary's contents.
        dictionary_frame: the dictionary's frame, when it is sent with this
            version (a new state's first dictionary), else ``b""``.
        sent_bytes: the bytes of frames this save sends.
    """

    frame: bytes
    info: VersionInfo
    pieces: list[tuple[bytes, bytes]] = msgspec.field(default_factory=list)
    refs: dict[bytes, int] = msgspec.field(default_factory=dict)
    dictionary_id: bytes = b""
    dictionary: bytes = b""
    dictionary_frame: bytes = b""
    sent_bytes: int = 0


class StoredVersion(msgspec.Struct):
    """A version as a load reads it: its frame, and for a chunked one its pieces.

    Attributes:
        frame: the version's frame.
        pieces: piece id -> frame, every piece it refers to.
        dictionary: the state's dictionary frame, if it has one.
    """

    frame: bytes
    pieces: dict[bytes, bytes] = msgspec.field(default_factory=dict)
    dictionary: bytes | None = None


class Codec:
    """Turns states into stored versions and back, for one store's settings."""

    def __init__(
        self,
        *,
        compression: CompressionType,
        compression_threshold: int,
        offload_threshold: int,
        max_payload_bytes: int,
        signing: SigningKeys | None = None,
        chunk_threshold: int | None = None,
        chunking: ChunkingParams | None = None,
        tree: TreeParams | None = None,
    ) -> None:
        self.compression = compression
        self.signing = signing
        self.compression_threshold = compression_threshold
        self.offload_threshold = offload_threshold
        self.chunk_threshold = chunk_threshold
        self.chunking = chunking or ChunkingParams()
        self.tree = tree or TreeParams()
        self.states = StateCodec(max_payload_bytes)

    # -- encoding ---------------------------------------------------------------------

    def encode_state(self, state: object) -> bytes:
        """Return the msgpack bytes of ``state``, or raise ``SerializationError``."""
        return self.states.encode(state)

    def chunks(self, raw: bytes) -> bool:
        """Tell whether an encoded state of this size is stored in chunks."""
        return self.chunk_threshold is not None and len(raw) >= self.chunk_threshold

    async def encode(
        self,
        raw: bytes,
        header: VersionHeader,
        state_id: str,
        known: KnownPieces | None = None,
    ) -> EncodedVersion:
        """Return ``raw`` (an encoded state) as a version to send, with ``header``.

        A chunked version sends only the pieces ``known`` does not list.
        """
        if len(raw) >= self.offload_threshold:
            return await self._in_thread(self.encode_now, raw, header, state_id, known)
        return self.encode_now(raw, header, state_id, known)

    def encode_now(
        self, raw: bytes, header: VersionHeader, state_id: str, known: KnownPieces | None = None
    ) -> EncodedVersion:
        """:meth:`encode` on the calling thread."""
        if not self.chunks(raw):
            return self._whole(raw, header, state_id)
        return self._chunked(plan(raw, self.chunking, self.tree), raw, header, state_id, known)

    def _whole(self, raw: bytes, header: VersionHeader, state_id: str) -> EncodedVersion:
        codec, payload = (
            compress(self.compression, raw)
            if len(raw) >= self.compression_threshold
            else (CompressionType.NONE, raw)
        )
        version = self._version_frame(frames.KIND_VERSION, codec, header, payload, state_id)
        return EncodedVersion(version[0], version[1], sent_bytes=len(version[0]))

    def _version_frame(
        self,
        kind: int,
        codec: CompressionType,
        header: VersionHeader,
        payload: bytes | memoryview,
        state_id: str,
    ) -> tuple[bytes, VersionInfo]:
        data = frames.pack(
            kind,
            CODEC_IDS[codec] if kind == frames.KIND_VERSION else 0,
            header_encoder.encode(header),
            payload,
            signing=self.signing,
            state_id=state_id,
        )
        parsed = frames.parse(data)
        stored = header.stored_bytes if kind == frames.KIND_MANIFEST else len(data)
        return data, VersionInfo(header, codec, parsed.checksum, stored, kind == frames.KIND_MANIFEST)

    def _chunk_frame(self, data: memoryview, dictionary_id: bytes, dictionary: bytes) -> bytes:
        codec, payload = compress(self.compression, data, dictionary)
        # A chunk left uncompressed needs no dictionary to read.
        used = dictionary_id if codec is not CompressionType.NONE else b""
        return frames.pack(
            frames.KIND_CHUNK,
            CODEC_IDS[codec],
            header_encoder.encode(ChunkHeader(len(data), used)),
            payload,
        )

    def _dictionary(self, chunked: ChunkPlan) -> tuple[bytes, bytes, bytes] | None:
        """Return ``(id, frame, contents)`` of a new dictionary from a state's first chunks."""
        if self.compression is CompressionType.NONE:
            return None
        total = sum(len(chunk) for chunk in chunked.chunks.values())
        if total < DICTIONARY_MIN_CONTENT:
            return None
        parts: list[memoryview] = []
        size = 0
        for chunk in chunked.chunks.values():
            parts.append(chunk[: DICTIONARY_SIZE - size])
            size += len(parts[-1])
            if size >= DICTIONARY_SIZE:
                break
        contents = b"".join(parts)
        codec, payload = compress(self.compression, contents)
        data = frames.pack(
            frames.KIND_DICTIONARY,
            CODEC_IDS[codec],
            header_encoder.encode(DictionaryHeader(len(contents))),
            payload,
        )
        return piece_id(_DICTIONARY_TAG, contents), data, contents

    def _chunked(
        self,
        chunked: ChunkPlan,
        raw: bytes,
        header: VersionHeader,
        state_id: str,
        known: KnownPieces | None,
    ) -> EncodedVersion:
        known = known or KnownPieces()
        held = known.sizes
        dictionary_id, dictionary = known.dictionary_id, known.dictionary
        new_dictionary = None
        if not dictionary_id:
            new_dictionary = self._dictionary(chunked)
            if new_dictionary is not None:
                dictionary_id, _, dictionary = new_dictionary
        pieces: list[tuple[bytes, bytes]] = []
        refs: dict[bytes, int] = {}
        shrank = False
        for ident, body in chunked.nodes.items():
            size = held.get(ident)
            if size is None:
                data = frames.pack(frames.KIND_NODE, 0, header_encoder.encode(()), body)
                pieces.append((ident, data))
                size = len(data)
            refs[ident] = size
        for ident, chunk in chunked.chunks.items():
            size = held.get(ident)
            if size is None:
                data = self._chunk_frame(chunk, dictionary_id, dictionary)
                pieces.append((ident, data))
                size = len(data)
                shrank = shrank or data[3] != 0
            refs[ident] = size
        pieces_bytes = sum(refs.values())
        # The codec its new chunks were written with: NONE when none of them
        # shrank; the store's codec when they all were shared already.
        built = any(data[2] == frames.KIND_CHUNK for _, data in pieces)
        codec = self.compression if shrank or not built else CompressionType.NONE
        full = msgspec.structs.replace(
            header,
            state_crc=zlib.crc32(raw),
            codec_id=CODEC_IDS[codec],
            stored_bytes=pieces_bytes + len(chunked.body) + 64,
        )
        # stored_bytes counts the version's own frame, whose size depends on
        # stored_bytes: settle it (the varint width changes at most twice).
        for _ in range(3):
            version, info = self._version_frame(
                frames.KIND_MANIFEST, codec, full, chunked.body, state_id
            )
            if full.stored_bytes == pieces_bytes + len(version):
                break
            full = msgspec.structs.replace(full, stored_bytes=pieces_bytes + len(version))
        frame_sent = b"" if new_dictionary is None else new_dictionary[1]
        return EncodedVersion(
            version,
            info,
            pieces=pieces,
            refs=refs,
            dictionary_id=dictionary_id,
            dictionary=dictionary,
            dictionary_frame=frame_sent,
            sent_bytes=len(version) + sum(len(data) for _, data in pieces) + len(frame_sent),
        )

    async def reframe(
        self,
        frame: bytes,
        header_of: Callable[[VersionHeader], VersionHeader],
        state_id: str,
        version: int,
    ) -> EncodedVersion:
        """Return a stored version's payload in a new frame, verifying the old one first.

        ``header_of(old_header)`` gives the new header. Used by rollback: the
        payload (a whole state, or a manifest whose pieces stay where they
        are) is copied, never decoded or recompressed.
        """

        def work() -> EncodedVersion:
            parsed = self._checked(frame, state_id, version)
            info = self._info(parsed, state_id, version, None)
            new_header = header_of(info.header)
            data, new_info = self._version_frame(
                parsed.kind, info.compression, new_header, parsed.payload, state_id
            )
            refs = {}
            if parsed.kind == frames.KIND_MANIFEST:
                refs = dict.fromkeys(self._refs(parsed.payload, state_id, version), 0)
            return EncodedVersion(data, new_info, refs=refs, sent_bytes=len(data))

        if len(frame) >= self.offload_threshold:
            return await self._in_thread(work)
        return work()

    def resend(self, stored: StoredVersion, state_id: str, version: int) -> EncodedVersion:
        """Return a stored version, checked, as a save sends it: with every piece it uses.

        Used by ``recostate import``: the frames are written back as they are.

        Raises:
            IntegrityError: the version, one of its pieces or the state fails its checks.
        """
        _, info = self.decode_now(stored, state_id, version)
        pieces = list(stored.pieces.items())
        contents = dictionary_id = frame_sent = b""
        if info.chunked and stored.dictionary is not None:
            contents = self.dictionary_contents(stored.dictionary, state_id, version)
            dictionary_id = self.dictionary_id(contents)
            frame_sent = stored.dictionary
        return EncodedVersion(
            stored.frame,
            info,
            pieces=pieces,
            refs={ident: len(data) for ident, data in pieces},
            dictionary_id=dictionary_id,
            dictionary=contents,
            dictionary_frame=frame_sent,
            sent_bytes=len(stored.frame) + sum(len(data) for _, data in pieces) + len(frame_sent),
        )

    # -- decoding ---------------------------------------------------------------------

    def _refs(self, body: memoryview, state_id: str, version: int | None) -> list[bytes]:
        try:
            return body_refs(body)
        except ManifestError as exc:
            raise IntegrityError(state_id, version, str(exc)) from exc

    def _layout(
        self, data: bytes | memoryview, state_id: str, version: int | None, *, partial: bool = False
    ) -> frames.ParsedFrame:
        """Parse a version frame and apply the store's signing rules; ``IntegrityError`` otherwise."""
        try:
            parsed = frames.parse(data, partial=partial)
        except frames.FrameError as exc:
            raise IntegrityError(state_id, version, "unreadable frame header") from exc
        if parsed.kind not in (frames.KIND_VERSION, frames.KIND_MANIFEST):
            raise IntegrityError(state_id, version, "unreadable frame header")
        if self.signing is not None:
            if parsed.key_id is None:
                raise IntegrityError(
                    state_id, version, "the frame is not signed, and this store accepts signed frames only"
                )
            if self.signing.verifier(parsed.key_id) is None:
                raise IntegrityError(
                    state_id,
                    version,
                    f"the frame is signed with key id {parsed.key_id!r}, which this store does not hold",
                )
        elif parsed.key_id is not None:
            raise IntegrityError(
                state_id,
                version,
                f"the frame is signed (key id {parsed.key_id!r}), and this store has no signing_key to check it",
            )
        return parsed

    def _info(
        self,
        parsed: frames.ParsedFrame,
        state_id: str,
        version: int | None,
        stored_bytes: int | None,
    ) -> VersionInfo:
        try:
            header = header_decoder.version.decode(parsed.header)
            # Metadata reads do not verify the checksum: a damaged timestamp
            # must still be an IntegrityError, not datetime's own error later.
            header.updated_at  # noqa: B018
            chunked = parsed.kind == frames.KIND_MANIFEST
            compression = CODECS_BY_ID[header.codec_id if chunked else parsed.codec_id]
        except (msgspec.DecodeError, ValueError, OverflowError, OSError, KeyError) as exc:
            raise IntegrityError(state_id, version, "unreadable frame header") from exc
        if chunked:
            stored = header.stored_bytes
        else:
            stored = len(parsed.frame) if stored_bytes is None else stored_bytes
        return VersionInfo(header, compression, parsed.checksum, stored, chunked)

    def parse_header(
        self, data: bytes, state_id: str, version: int | None, stored_bytes: int | None = None
    ) -> VersionInfo:
        """Read a version's metadata from its frame (or the frame's first bytes), unverified.

        ``stored_bytes`` is the whole frame's size when ``data`` holds only its
        start. A frame signed when this store does not sign, or the reverse,
        or signed with a key this store does not hold, is an ``IntegrityError``
        already here.
        """
        parsed = self._layout(data, state_id, version, partial=True)
        return self._info(parsed, state_id, version, stored_bytes)

    def _checked(self, data: bytes, state_id: str, version: int) -> frames.ParsedFrame:
        parsed = self._layout(data, state_id, version)
        if parsed.key_id is None:
            if not parsed.verify_crc():
                raise IntegrityError(state_id, version, "checksum mismatch")
        else:
            assert self.signing is not None  # _layout refused signed frames otherwise
            if not parsed.verify_signature(self.signing, state_id):
                raise IntegrityError(state_id, version, "signature mismatch")
        return parsed

    def decode_now(
        self, stored: StoredVersion, state_id: str, version: int, type_: Any = None
    ) -> tuple[Any, VersionInfo]:
        """Verify and decode a stored version; ``IntegrityError`` on any corruption."""
        parsed = self._checked(stored.frame, state_id, version)
        info = self._info(parsed, state_id, version, None)
        size = info.header.size_bytes
        if size > MAX_PAYLOAD_CEILING:
            # No store writes more; refuse before allocating what a header claims.
            raise IntegrityError(state_id, version, "announced size over the largest payload")
        try:
            if info.chunked:
                raw = self._assemble(parsed.payload, stored, info.header, state_id, version)
            else:
                raw = decompress(info.compression, parsed.payload, size)
        except DecompressionError as exc:
            raise IntegrityError(state_id, version, "payload does not decompress") from exc
        try:
            return self.states.decode(raw, type_), info
        except UndecodableState as exc:
            raise IntegrityError(state_id, version, "payload does not decode") from exc

    def _piece(
        self, data: bytes | None, ident: bytes, kind: int, state_id: str, version: int
    ) -> frames.ParsedFrame:
        if data is None:
            raise IntegrityError(state_id, version, f"piece {ident.hex()} is missing")
        try:
            parsed = frames.parse(data)
        except frames.FrameError as exc:
            raise IntegrityError(state_id, version, f"piece {ident.hex()} is unreadable") from exc
        if parsed.kind != kind or parsed.key_id is not None or not parsed.verify_crc():
            raise IntegrityError(state_id, version, f"piece {ident.hex()} fails its checksum")
        return parsed

    def _assemble(
        self,
        body: memoryview,
        stored: StoredVersion,
        header: VersionHeader,
        state_id: str,
        version: int,
    ) -> bytes:
        """Return the encoded state a chunked version's pieces hold, every piece checked."""
        dictionaries = self._dictionaries(stored, state_id, version)
        chunks: dict[bytes, bytes] = {}
        nodes: dict[bytes, memoryview] = {}
        merkle = self.signing is not None
        pending = self._refs(body, state_id, version)
        while pending:
            ident = pending.pop()
            if ident in chunks or ident in nodes:
                continue
            data = stored.pieces.get(ident)
            if data is not None and data[2:3] == bytes((frames.KIND_NODE,)):
                parsed = self._piece(data, ident, frames.KIND_NODE, state_id, version)
                if merkle and piece_id(NODE_TAG, parsed.payload) != ident:
                    raise IntegrityError(state_id, version, f"piece {ident.hex()} is not what its id says")
                nodes[ident] = parsed.payload
                pending.extend(self._refs(parsed.payload, state_id, version))
                continue
            parsed = self._piece(data, ident, frames.KIND_CHUNK, state_id, version)
            try:
                chunk_header = header_decoder.chunk.decode(parsed.header)
                dictionary = dictionaries[chunk_header.dictionary] if chunk_header.dictionary else b""
                raw = decompress(
                    CODECS_BY_ID[parsed.codec_id], parsed.payload, chunk_header.size_bytes, dictionary
                )
            except (msgspec.DecodeError, KeyError, DecompressionError) as exc:
                raise IntegrityError(state_id, version, f"piece {ident.hex()} does not decompress") from exc
            if merkle and piece_id(CHUNK_TAG, raw) != ident:
                raise IntegrityError(state_id, version, f"piece {ident.hex()} is not what its id says")
            chunks[ident] = raw
        parts: list[bytes | memoryview] = []
        try:
            expand(body, chunks, nodes, parts)
        except ManifestError as exc:
            raise IntegrityError(state_id, version, str(exc)) from exc
        raw = b"".join(parts)
        if len(raw) != header.size_bytes or zlib.crc32(raw) != header.state_crc:
            raise IntegrityError(state_id, version, "the chunks do not make up the state")
        return raw

    def _dictionaries(self, stored: StoredVersion, state_id: str, version: int) -> Mapping[bytes, bytes]:
        if stored.dictionary is None:
            return {}
        contents = self.dictionary_contents(stored.dictionary, state_id, version)
        return {piece_id(_DICTIONARY_TAG, contents): contents}

    def dictionary_contents(self, data: bytes, state_id: str, version: int | None) -> bytes:
        """Return a dictionary frame's contents, checked."""
        try:
            parsed = frames.parse(data)
            if parsed.kind != frames.KIND_DICTIONARY or not parsed.verify_crc():
                raise frames.FrameError("not a sound dictionary")
            size = header_decoder.dictionary.decode(parsed.header).size_bytes
            return decompress(CODECS_BY_ID[parsed.codec_id], parsed.payload, size)
        except (frames.FrameError, msgspec.DecodeError, KeyError, DecompressionError) as exc:
            raise IntegrityError(state_id, version, "the state's dictionary is damaged") from exc

    def dictionary_id(self, contents: bytes) -> bytes:
        """Return the id of a dictionary with these contents."""
        return piece_id(_DICTIONARY_TAG, contents)

    def known(self, stored: StoredVersion) -> KnownPieces:
        """Return what a sound, decoded chunked version shows the server holds."""
        sizes = {ident: len(data) for ident, data in stored.pieces.items()}
        if stored.dictionary is None:
            return KnownPieces(sizes)
        contents = self.dictionary_contents(stored.dictionary, "", None)
        return KnownPieces(sizes, self.dictionary_id(contents), contents)

    async def decode(
        self, stored: StoredVersion, state_id: str, version: int, type_: Any = None
    ) -> tuple[Any, VersionInfo]:
        """Verify and decode a stored version, in a worker thread above ``offload_threshold``."""
        size = len(stored.frame) + sum(len(piece) for piece in stored.pieces.values())
        if size >= self.offload_threshold:
            return await self._in_thread(self.decode_now, stored, state_id, version, type_)
        return self.decode_now(stored, state_id, version, type_)

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(func, *args)
