"""The values the codec and the storage layer hand each other about versions and pieces."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import msgspec

from recostate._codec.headers import VersionHeader
from recostate._codec.manifest import Cut
from recostate._types import CompressionType

__all__ = ["EncodedVersion", "KnownPieces", "StoredVersion", "VersionInfo", "now_ms"]


def now_ms() -> int:
    """Return the current UTC time in whole milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass
class KnownPieces:
    """What this client believes the server holds of one state's pieces, and holds itself.

    Attributes:
        sizes: piece id -> size of its stored frame.
        dictionary_id: the id of the state's dictionary (``b""``: none known).
        dictionary: that dictionary's contents.
        chunks: chunk id -> its bytes, and ``nodes``: node id -> its manifest
            body, as this client read or wrote them (checked then), so a load
            need not fetch them again.
        raw: the encoded state of the version those pieces make up (its
            ``chunks`` and ``nodes`` are exactly that version's), with
            ``body``, its manifest body, and ``state_crc``, its CRC-32: a save
            of the very same bytes reuses its cut instead of cutting again.
        cut: how the last version this client wrote was cut (the next
            version, when it extends that one, is cut faster).
    """

    sizes: dict[bytes, int] = field(default_factory=dict)
    dictionary_id: bytes = b""
    dictionary: bytes = b""
    chunks: dict[bytes, bytes | memoryview] = field(default_factory=dict)
    nodes: dict[bytes, bytes | memoryview] = field(default_factory=dict)
    raw: bytes = b""
    body: bytes = b""
    state_crc: int = 0
    cut: Cut | None = None

    @property
    def held_bytes(self) -> int:
        """How many bytes of pieces (and of the encoded state) this holds."""
        cut = self.cut
        return (
            sum(map(len, self.chunks.values()))
            + sum(map(len, self.nodes.values()))
            + len(self.raw)
            + (len(cut.raw) if cut is not None and cut.raw is not self.raw else 0)
        )

    def same_state(self, raw: bytes) -> bool:
        """Tell whether ``raw`` is the encoded state these pieces make up."""
        return bool(self.body) and len(self.raw) == len(raw) and self.raw == raw

    def same_manifest(self, body: bytes | memoryview) -> bool:
        """Tell whether ``body`` is the manifest of the state these pieces make up.

        Pieces are named by their contents, so the same manifest body is the
        same state: a load of an unchanged head needs neither its pieces nor
        a new assembly.
        """
        return bool(self.body) and len(self.body) == len(body) and self.body == body


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
        chunks: for a chunked version, each chunk's bytes; ``nodes``: each node's body.
        sent_bytes: the bytes of frames this save sends.
        raw: for a chunked version, the encoded state; ``body``: its manifest body.
        cut: for a chunked version, how it was cut (kept for cutting the next one).
    """

    frame: bytes
    info: VersionInfo
    pieces: list[tuple[bytes, bytes]] = msgspec.field(default_factory=list)
    refs: dict[bytes, int] = msgspec.field(default_factory=dict)
    dictionary_id: bytes = b""
    dictionary: bytes = b""
    dictionary_frame: bytes = b""
    sent_bytes: int = 0
    chunks: dict[bytes, bytes | memoryview] = msgspec.field(default_factory=dict)
    nodes: dict[bytes, bytes | memoryview] = msgspec.field(default_factory=dict)
    raw: bytes = b""
    body: bytes = b""
    cut: Cut | None = None


class StoredVersion(msgspec.Struct):
    """A version as a load reads it: its frame, and for a chunked one its pieces.

    Attributes:
        frame: the version's frame.
        pieces: piece id -> frame, the pieces it refers to that were read.
        dictionary: the state's dictionary frame, when it was read.
        held: what the client held already of the state (those pieces were not read).
        chunks, nodes, dictionary_contents: filled by decoding: the contents
            of the version's pieces and of the dictionary they were compressed with;
            ``raw`` and ``body``: the encoded state they make up, and its manifest body.
    """

    frame: bytes
    pieces: dict[bytes, bytes] = msgspec.field(default_factory=dict)
    dictionary: bytes | None = None
    held: KnownPieces | None = None
    chunks: dict[bytes, bytes | memoryview] = msgspec.field(default_factory=dict)
    nodes: dict[bytes, bytes | memoryview] = msgspec.field(default_factory=dict)
    dictionary_contents: bytes = b""
    raw: bytes = b""
    body: bytes = b""
