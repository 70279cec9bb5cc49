"""Manifests: how a chunked version names its chunks, as a tree whose nodes are shared too.

A chunked version's payload is a *manifest body*; so is the payload of a
manifest *node*. A body is::

    4 bytes   N, unsigned big-endian: how many pieces it refers to
    N x 16    the ids of those pieces (each once)
    ...       msgpack array of entries, in order: bytes (a literal, copied
              as it is) or an int (the index of a referenced piece, replaced
              by that piece's contents: a chunk's bytes, or a node's expansion)

The server-side scripts read only the first two fields, to keep reference
counts; everything after them is the client's.

Why a tree: version k of a list that grew by one element a step refers to
about k chunks, so flat manifests would cost the history k**2 references. The
references of a large manifest are grouped into nodes at content-defined
points (after a reference whose id falls under a bar); the references after
the last such point stay in the manifest itself. So an append changes only
the top (and makes one new node when a group closes), an edit changes the
node around it, and the other nodes are shared like chunks.

Ids are the first 16 bytes of SHA-256 over a kind byte and the piece's
contents: equal contents share one stored piece, and a node's id covers the
ids of everything under it, so a signed manifest covers every byte of the
state (see ``recostate._codec.policy``).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from recostate._codec import frame as frames
from recostate._codec.chunking import CHUNK, ChunkingParams, split

__all__ = [
    "ID_SIZE",
    "ChunkPlan",
    "ManifestError",
    "TreeParams",
    "body_refs",
    "expand",
    "is_node_id",
    "piece_id",
    "plan",
    "refs_of_frame",
]

ID_SIZE: Final = 16
_COUNT = struct.Struct(">I")
_entries_encoder = msgspec.msgpack.Encoder()
_entries_decoder = msgspec.msgpack.Decoder(list[bytes | int])

CHUNK_TAG: Final = b"\x03"
NODE_TAG: Final = b"\x04"
DICTIONARY_TAG: Final = b"\x05"


class ManifestError(ValueError):
    """A manifest body that cannot be read, or that names a piece that is not there."""


@dataclass(frozen=True)
class TreeParams:
    """How references are grouped into nodes.

    Attributes:
        top_max: a manifest with more references than this is split into nodes.
        fanout: the average number of references per node.
    """

    top_max: int = 16
    fanout: int = 8


def piece_id(tag: bytes, contents: bytes | memoryview) -> bytes:
    """Return the id of a piece: SHA-256 over its kind tag and contents, first 16 bytes.

    The first bit says what the piece is: set for a manifest node, clear for
    anything else. So a script that walks a manifest knows which ids are
    nodes (to read and walk further) without reading the chunks.
    """
    digest = hashlib.sha256(tag)
    digest.update(contents)
    ident = digest.digest()[:ID_SIZE]
    if tag == NODE_TAG:
        return bytes((ident[0] | 0x80,)) + ident[1:]
    return bytes((ident[0] & 0x7F,)) + ident[1:]


def is_node_id(ident: bytes) -> bool:
    """Tell whether a piece id names a manifest node (see :func:`piece_id`)."""
    return ident[0] >= 0x80


def _body(entries: Sequence[bytes | tuple[bytes]]) -> bytes:
    """Encode entries: ``bytes`` literals, or ``(id,)`` references."""
    refs: dict[bytes, int] = {}
    items: list[bytes | int] = []
    for entry in entries:
        if isinstance(entry, tuple):
            index = refs.setdefault(entry[0], len(refs))
            items.append(index)
        else:
            items.append(entry)
    return b"".join((_COUNT.pack(len(refs)), *refs, _entries_encoder.encode(items)))


def body_refs(body: bytes | memoryview) -> list[bytes]:
    """Return the ids a manifest body refers to (each once)."""
    view = memoryview(body)
    try:
        (count,) = _COUNT.unpack_from(view)
    except struct.error:
        raise ManifestError("manifest shorter than its count") from None
    end = 4 + count * ID_SIZE
    if end > len(view):
        raise ManifestError("manifest shorter than its references")
    return [bytes(view[4 + i * ID_SIZE : 4 + (i + 1) * ID_SIZE]) for i in range(count)]


def refs_of_frame(data: bytes) -> list[bytes]:
    """Return the ids a chunked version's or a node's frame refers to (``[]`` for other frames).

    Unchecked: a frame that does not read refers to nothing here, and fails
    its own checks where it is used.
    """
    try:
        parsed = frames.parse(data)
        if parsed.kind not in (frames.KIND_MANIFEST, frames.KIND_NODE):
            return []
        return body_refs(parsed.payload)
    except (frames.FrameError, ManifestError):
        return []


def _entries(body: bytes | memoryview) -> tuple[list[bytes], list[bytes | int]]:
    refs = body_refs(body)
    try:
        items = _entries_decoder.decode(memoryview(body)[4 + len(refs) * ID_SIZE :])
    except msgspec.DecodeError as exc:
        raise ManifestError("manifest entries do not decode") from exc
    return refs, items


@dataclass
class ChunkPlan:
    """A large state cut into chunks and manifest nodes, before anything is compressed.

    Attributes:
        body: the version's manifest body.
        chunks: id -> the chunk's bytes (a view into the encoded state), in order.
        nodes: id -> a node's body.
        refs: every piece id the version refers to, directly or through nodes.
    """

    body: bytes
    chunks: dict[bytes, bytes | memoryview]
    nodes: dict[bytes, bytes | memoryview]

    @property
    def refs(self) -> list[bytes]:
        """Every piece the version needs: nodes first (top down), then chunks."""
        return [*self.nodes, *self.chunks]


def plan(raw: bytes, chunking: ChunkingParams, tree: TreeParams) -> ChunkPlan:
    """Cut ``raw`` (an encoded state) into chunks and build its manifest tree."""
    view = memoryview(raw)
    chunks: dict[bytes, bytes | memoryview] = {}
    entries: list[bytes | tuple[bytes]] = []
    ref_count = 0
    for kind, start, end in split(raw, chunking):
        if kind == CHUNK:
            data = view[start:end]
            ident = piece_id(CHUNK_TAG, data)
            chunks.setdefault(ident, data)
            entries.append((ident,))
            ref_count += 1
        else:
            entries.append(raw[start:end])
    levels: list[dict[bytes, bytes]] = []
    while ref_count > tree.top_max:
        level: dict[bytes, bytes] = {}
        entries = _group(entries, tree, level)
        levels.append(level)
        # Every node holds at least two references and a level closes at
        # least one node, so each pass has fewer references than the last.
        ref_count = sum(1 for entry in entries if isinstance(entry, tuple))
    nodes: dict[bytes, bytes | memoryview] = {}
    for level in reversed(levels):
        nodes.update(level)
    return ChunkPlan(_body(entries), chunks, nodes)


def _group(
    entries: list[bytes | tuple[bytes]], tree: TreeParams, level: dict[bytes, bytes]
) -> list[bytes | tuple[bytes]]:
    """Group one level's references into nodes (stored in ``level``); return the level above.

    A node closes after a reference whose id's first 4 bytes fall under a bar
    (a content-defined point, so an append only changes what follows the last
    one), once it holds two references at least, or when it is full.
    """
    bar = (1 << 32) // tree.fanout
    most = max(2, min(4 * tree.fanout, tree.top_max))
    grouped: list[bytes | tuple[bytes]] = []
    current: list[bytes | tuple[bytes]] = []
    held = 0
    for entry in entries:
        if not current and not isinstance(entry, tuple):
            # A node starts at a reference: the literals before it (a
            # container's header, whose length changes with each append)
            # stay at this level, so they never make the first node new.
            grouped.append(entry)
            continue
        current.append(entry)
        if isinstance(entry, tuple):
            held += 1
            # Bytes 4..8 of the id: the first byte also says the piece's kind.
            if held >= most or (held >= 2 and int.from_bytes(entry[0][4:8], "big") < bar):
                grouped.append(_close(current, level))
                current, held = [], 0
    if current and not level:
        # Nothing closed at this level, so nothing would shrink: close it.
        grouped.append(_close(current, level))
    else:
        # The last group was not closed by a content-defined point: it stays
        # at this level, so an append makes a new node only when a group closes.
        grouped.extend(current)
    return grouped


def _close(entries: list[bytes | tuple[bytes]], level: dict[bytes, bytes]) -> tuple[bytes]:
    body = _body(entries)
    ident = piece_id(NODE_TAG, body)
    level.setdefault(ident, body)
    return (ident,)


def expand(
    body: bytes | memoryview,
    chunks: Mapping[bytes, bytes | memoryview],
    nodes: Mapping[bytes, bytes | memoryview],
    out: list[bytes | memoryview],
    depth: int = 0,
) -> None:
    """Append to ``out`` the bytes ``body`` stands for, given every piece it refers to.

    Raises:
        ManifestError: the body does not read, names a piece not given, or nests absurdly.
    """
    if depth > 32:
        raise ManifestError("manifest nodes nest too deep")
    refs, items = _entries(body)
    for item in items:
        if isinstance(item, bytes):
            out.append(item)
            continue
        if not 0 <= item < len(refs):
            raise ManifestError("manifest entry out of range")
        ident = refs[item]
        chunk = chunks.get(ident)
        if chunk is not None:
            out.append(chunk)
            continue
        node = nodes.get(ident)
        if node is None:
            raise ManifestError(f"piece {ident.hex()} is missing")
        expand(node, chunks, nodes, out, depth + 1)
