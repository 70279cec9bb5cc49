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
from collections.abc import Callable

import msgspec

from recostate._codec import frame as frames
from recostate._codec.chunking import ChunkingParams, params_for
from recostate._codec.compression import CODEC_IDS, compress
from recostate._codec.headers import ChunkHeader, DictionaryHeader, VersionHeader, header_encoder
from recostate._codec.manifest import (
    DICTIONARY_TAG,
    ChunkPlan,
    Cut,
    TreeParams,
    piece_id,
    plan,
)
from recostate._codec.reading import VersionReader
from recostate._codec.states import StateCodec
from recostate._codec.versions import (
    EncodedVersion,
    KnownPieces,
    StoredVersion,
    VersionInfo,
    now_ms,
)
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

#: The most bytes of a state's content its compression dictionary holds.
DICTIONARY_SIZE = 4096
#: A state gets a dictionary once its chunks hold this much: below it, the
#: dictionary would cost more than it saves.
DICTIONARY_MIN_CONTENT = DICTIONARY_SIZE


class Codec(VersionReader):
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
        super().__init__(
            signing=signing, states=StateCodec(max_payload_bytes), offload_threshold=offload_threshold
        )
        self.compression = compression
        self.compression_threshold = compression_threshold
        self.chunk_threshold = chunk_threshold
        # None: by the state's size (recostate._codec.chunking.SIZE_CLASSES).
        self.chunking = chunking
        self.tree = tree or TreeParams()

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
        cut: ChunkPlan | None = None,
        *,
        chunked: bool | None = None,
    ) -> EncodedVersion:
        """Return ``raw`` (an encoded state) as a version to send, with ``header``.

        A chunked version sends only the pieces ``known`` does not list;
        ``cut``: its chunks and manifest, when :meth:`cut` made them already;
        ``chunked``: whole or chunked, when the caller decides (``None``: by
        ``chunk_threshold``).
        """
        if len(raw) >= self.offload_threshold:
            return await self._in_thread(
                self.encode_now, raw, header, state_id, known, cut, chunked
            )
        return self.encode_now(raw, header, state_id, known, cut, chunked)

    async def cut(self, raw: bytes) -> ChunkPlan:
        """Return a state's chunks and manifest (in a worker thread above ``offload_threshold``)."""
        if len(raw) >= self.offload_threshold:
            return await self._in_thread(self._plan, raw)
        return self._plan(raw)

    def _plan(self, raw: bytes, previous: Cut | None = None) -> ChunkPlan:
        """Cut ``raw``; ``previous``: how an earlier version of the state was cut (ids reused)."""
        return plan(raw, self.chunking or params_for(len(raw)), self.tree, previous)

    def encode_now(
        self,
        raw: bytes,
        header: VersionHeader,
        state_id: str,
        known: KnownPieces | None = None,
        cut: ChunkPlan | None = None,
        chunked: bool | None = None,
    ) -> EncodedVersion:
        """:meth:`encode` on the calling thread."""
        if not (self.chunks(raw) if chunked is None else chunked):
            return self._whole(raw, header, state_id)
        if known is not None and known.same_state(raw):
            # The state this client last wrote or read, unchanged: its cut and
            # checksum stand (cutting is most of a large save's client time).
            same = ChunkPlan(known.body, known.chunks, known.nodes, known.cut)
            return self._chunked(same, raw, header, state_id, known, known.state_crc)
        if cut is None:
            cut = self._plan(raw, None if known is None else known.cut)
        return self._chunked(cut, raw, header, state_id, known)

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
        checksum = frames.checksum_text(frames.digest_of(data))
        stored = header.stored_bytes if kind == frames.KIND_MANIFEST else len(data)
        return data, VersionInfo(header, codec, checksum, stored, kind == frames.KIND_MANIFEST)

    def _chunk_frame(
        self, data: bytes | memoryview, dictionary_id: bytes, dictionary: bytes
    ) -> bytes:
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
        parts: list[bytes | memoryview] = []
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
        return piece_id(DICTIONARY_TAG, contents), data, contents

    def _chunked(
        self,
        chunked: ChunkPlan,
        raw: bytes,
        header: VersionHeader,
        state_id: str,
        known: KnownPieces | None,
        state_crc: int | None = None,
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
            state_crc=zlib.crc32(raw) if state_crc is None else state_crc,
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
            chunks=dict(chunked.chunks),
            nodes=dict(chunked.nodes),
            raw=raw,
            body=chunked.body,
            cut=chunked.cut,
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
