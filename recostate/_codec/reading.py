"""Reading stored versions: frames checked under a store's signing rules, chunks assembled.

:class:`VersionReader` is the half of the codec that loads: it parses a
version's frame, applies the store's signing rules (a keyed store accepts
signed versions only, an unkeyed store refuses them), checks every piece,
assembles a chunked version from its chunks (and the ones the client held
already), and decodes. Every failure is an :class:`~recostate.IntegrityError`
naming the state and the version.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import anyio.lowlevel
import anyio.to_thread
import msgspec

from recostate._codec import frame as frames
from recostate._codec.compression import CODECS_BY_ID, DecompressionError, decompress
from recostate._codec.headers import VersionHeader, header_decoder
from recostate._codec.manifest import (
    DICTIONARY_TAG,
    NODE_TAG,
    ManifestError,
    body_refs,
    expand,
    piece_id,
)
from recostate._codec.pieces import ChunkError, unpack_chunks
from recostate._codec.states import StateCodec, UndecodableState
from recostate._codec.versions import KnownPieces, StoredVersion, VersionInfo
from recostate._config import MAX_PAYLOAD_CEILING
from recostate._errors import IntegrityError
from recostate._signing import SigningKeys

__all__ = ["VersionReader"]

T = TypeVar("T")

_MANIFEST_KIND = bytes([frames.KIND_MANIFEST])

#: Encoded states from this size on are decoded into builtins in steps on the
#: event loop; a smaller one is decoded in one call (a few milliseconds at most).
DECODE_IN_STEPS_FROM = 2 * 1024 * 1024

# The last millisecond a UTC datetime can show (9999-12-31T23:59:59.999Z).
_LATEST_MS = 253_402_300_799_999


class VersionReader:
    """Reads stored versions back, for one store's settings.

    Args:
        signing: the store's signing keys, or ``None``.
        states: the msgpack codec of states.
        offload_threshold: from this many stored bytes on, reading runs in a worker thread.
    """

    def __init__(
        self, *, signing: SigningKeys | None, states: StateCodec, offload_threshold: int
    ) -> None:
        self.signing = signing
        self.states = states
        self.offload_threshold = offload_threshold

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
            if header.updated_at_ms > _LATEST_MS:
                raise ValueError("timestamp past what a datetime holds")
            chunked = parsed.kind == frames.KIND_MANIFEST
            compression = CODECS_BY_ID[header.codec_id if chunked else parsed.codec_id]
        except (msgspec.DecodeError, ValueError, KeyError) as exc:
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
        raw, info = self.unpack_now(stored, state_id, version)
        return self._decoded(raw, info, state_id, version, type_)

    def unpack_now(
        self, stored: StoredVersion, state_id: str, version: int
    ) -> tuple[bytes, VersionInfo]:
        """Verify a stored version and return the bytes it holds, not decoded.

        For stored values that are not recostate states (a LangGraph
        checkpointer's serialized channel values): the same frames, chunks
        and checks, the bytes left to their own decoder.
        """
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
        return raw, info

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
        """Return the encoded state a chunked version's pieces hold, every piece checked.

        Pieces the client held already were checked when it first read or
        wrote them; the whole state is checked against its CRC-32 either way.
        """
        pieces = stored.pieces
        held = stored.held or KnownPieces()
        if held.same_manifest(body):
            # The state this client last read or wrote, unchanged: its bytes
            # were checked then; the frame's own checks passed just now.
            if len(held.raw) != header.size_bytes or held.state_crc != header.state_crc:
                raise IntegrityError(state_id, version, "the chunks do not make up the state")
            stored.chunks, stored.nodes = held.chunks, held.nodes
            stored.raw, stored.body = held.raw, held.body
            return held.raw
        merkle = self.signing is not None
        # The nodes first (a few per hundred chunks): they name the chunks.
        nodes: dict[bytes, bytes | memoryview] = {}
        pending = self._refs(body, state_id, version)
        chunk_ids: list[bytes] = []
        while pending:
            ident = pending.pop()
            if ident in nodes:
                continue
            body_held = held.nodes.get(ident)
            if body_held is not None:
                nodes[ident] = body_held
                pending.extend(self._refs(memoryview(body_held), state_id, version))
                continue
            data = pieces.get(ident)
            if data is None or data[2] != frames.KIND_NODE:
                chunk_ids.append(ident)
                continue
            parsed = self._piece(data, ident, frames.KIND_NODE, state_id, version)
            if merkle and piece_id(NODE_TAG, parsed.payload) != ident:
                raise IntegrityError(state_id, version, f"piece {ident.hex()} is not what its id says")
            nodes[ident] = parsed.payload
            pending.extend(self._refs(parsed.payload, state_id, version))
        fresh = [ident for ident in chunk_ids if ident not in held.chunks]
        try:
            chunks: dict[bytes, bytes | memoryview] = dict(
                unpack_chunks(
                    pieces,
                    fresh,
                    self._dictionaries(stored, state_id, version),
                    check_ids=merkle,
                    check_crc=False,
                )
            )
        except ChunkError as exc:
            raise IntegrityError(state_id, version, str(exc)) from exc
        for ident in chunk_ids:
            if ident not in chunks:
                chunks[ident] = held.chunks[ident]
        parts: list[bytes | memoryview] = []
        try:
            expand(body, chunks, nodes, parts)
        except ManifestError as exc:
            raise IntegrityError(state_id, version, str(exc)) from exc
        raw = b"".join(parts)
        if len(raw) != header.size_bytes or zlib.crc32(raw) != header.state_crc:
            raise IntegrityError(state_id, version, "the chunks do not make up the state")
        stored.chunks, stored.nodes = chunks, nodes
        stored.raw, stored.body = raw, bytes(body)
        return raw

    def _dictionaries(self, stored: StoredVersion, state_id: str, version: int) -> Mapping[bytes, bytes]:
        if stored.dictionary is None:
            held = stored.held
            return {held.dictionary_id: held.dictionary} if held and held.dictionary_id else {}
        contents = self.dictionary_contents(stored.dictionary, state_id, version)
        stored.dictionary_contents = contents
        return {piece_id(DICTIONARY_TAG, contents): contents}

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
        return piece_id(DICTIONARY_TAG, contents)

    def known(self, stored: StoredVersion) -> KnownPieces:
        """Return what a sound, decoded chunked version shows the server holds, and its contents."""
        held = stored.held or KnownPieces()
        if stored.raw is held.raw and stored.raw and not stored.pieces and stored.dictionary is None:
            return held  # the state the client held already, nothing new read
        sizes = {
            ident: len(stored.pieces[ident]) if ident in stored.pieces else held.sizes.get(ident, 0)
            for ident in (*stored.nodes, *stored.chunks)
        }
        if stored.dictionary is None:
            dictionary_id, dictionary = held.dictionary_id, held.dictionary
        else:
            dictionary = stored.dictionary_contents or self.dictionary_contents(
                stored.dictionary, "", None
            )
            dictionary_id = self.dictionary_id(dictionary)
        crc = 0
        if stored.raw:
            crc = self._info(self._layout(stored.frame, "", None), "", None, None).header.state_crc
        return KnownPieces(
            sizes,
            dictionary_id,
            dictionary,
            dict(stored.chunks),
            dict(stored.nodes),
            stored.raw,
            stored.body,
            crc,
        )

    async def unpack(self, stored: StoredVersion, state_id: str, version: int) -> bytes:
        """:meth:`unpack_now`, in a worker thread from ``offload_threshold`` bytes read."""
        size = len(stored.frame) + sum(map(len, stored.pieces.values()))
        if size >= self.offload_threshold:
            raw, _ = await self._in_thread(self.unpack_now, stored, state_id, version)
        else:
            raw, _ = self.unpack_now(stored, state_id, version)
        return raw

    async def decode(
        self, stored: StoredVersion, state_id: str, version: int, type_: Any = None
    ) -> tuple[Any, VersionInfo]:
        """Verify and decode a stored version; a large one off the event loop's way.

        From ``offload_threshold`` bytes read, or a state of at least
        :data:`DECODE_IN_STEPS_FROM` bytes, the checks, decompression and
        assembly run in a worker thread (a load that read a small manifest of
        a mid-sized state the client holds assembles on the loop: copies and
        a checksum, quicker than the hop to a thread). Decoding goes by the size of
        the state: from ``offload_threshold`` on, into a ``type_`` in the
        thread; into builtins from :data:`DECODE_IN_STEPS_FROM` on, on the
        loop in steps (:meth:`StateCodec.decode_steps`), since msgspec holds
        the GIL wherever it decodes.
        """
        size = len(stored.frame)
        if stored.pieces:
            size += sum(map(len, stored.pieces.values()))
        if (
            size < self.offload_threshold
            and stored.frame[2:3] == _MANIFEST_KIND
            and self._announced_size(stored.frame) >= DECODE_IN_STEPS_FROM
        ):
            # Few bytes read, but they make up a large state (its pieces held).
            size = self.offload_threshold
        if size >= self.offload_threshold:
            if type_ is not None:
                return await self._in_thread(self.decode_now, stored, state_id, version, type_)
            raw, info = await self._in_thread(self.unpack_now, stored, state_id, version)
        else:
            raw, info = self.unpack_now(stored, state_id, version)
            if type_ is not None and len(raw) >= self.offload_threshold:
                return await self._in_thread(self._decoded, raw, info, state_id, version, type_)
        if type_ is not None or len(raw) < DECODE_IN_STEPS_FROM:
            return self._decoded(raw, info, state_id, version, type_)
        steps = self.states.decode_steps(raw)
        try:
            while True:
                next(steps)
                await anyio.lowlevel.checkpoint()
        except StopIteration as done:
            return done.value, info
        except UndecodableState as exc:
            raise IntegrityError(state_id, version, "payload does not decode") from exc

    def _decoded(
        self, raw: bytes, info: VersionInfo, state_id: str, version: int, type_: Any
    ) -> tuple[Any, VersionInfo]:
        try:
            return self.states.decode(raw, type_), info
        except UndecodableState as exc:
            raise IntegrityError(state_id, version, "payload does not decode") from exc

    def _announced_size(self, frame: bytes) -> int:
        """Return the encoded state's size a version frame's header announces (0 if unreadable)."""
        try:
            parsed = frames.parse(frame, partial=True)
            return header_decoder.version.decode(parsed.header).size_bytes
        except (frames.FrameError, msgspec.DecodeError):
            return 0  # the checks that follow report it

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(func, *args)
