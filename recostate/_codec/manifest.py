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
from recostate._codec.chunking import CHUNK, ChunkingParams, split, top_container

__all__ = [
    "ID_SIZE",
    "ChunkPlan",
    "Cut",
    "ManifestError",
    "TreeParams",
    "body_refs",
    "expand",
    "is_node_id",
    "manifest_body",
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


def manifest_body(data: bytes) -> memoryview:
    """Return a chunked version's manifest body (empty for a frame that is not one).

    Unchecked, as :func:`refs_of_frame`.
    """
    try:
        parsed = frames.parse(data)
    except frames.FrameError:
        return memoryview(b"")
    return parsed.payload if parsed.kind == frames.KIND_MANIFEST else memoryview(b"")


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


_Entry = bytes | tuple[bytes]


@dataclass(eq=False)
class Cut:
    """What cutting one encoded state found, kept to cut its next version faster.

    A state that grew by an append is the same bytes as before up to the
    append (behind a container header whose length may have changed): the
    chunks lying in those bytes keep their ids, and nodes grouping the same
    references keep theirs, so only the new bytes are hashed.

    Attributes:
        raw: the encoded state that was cut.
        chunking: the chunk sizes it was cut with.
        ids: ``(start, end)`` of each chunk in ``raw`` -> its id.
        nodes: a node's entries -> its ``(id, body)``.
    """

    raw: bytes
    chunking: ChunkingParams
    ids: dict[tuple[int, int], bytes]
    nodes: dict[tuple[_Entry, ...], tuple[bytes, bytes]]

    def shift(self, raw: bytes, chunking: ChunkingParams) -> tuple[int, int, int] | None:
        """Return ``(lo, hi, delta)``: bytes ``lo:hi`` of ``raw`` are this cut's at ``-delta``.

        ``None`` when ``raw`` does not begin with this cut's state (allowing
        for a new container header), or is cut with other chunk sizes.
        """
        old = self.raw
        if chunking != self.chunking or not old or not raw:
            return None
        old_top, new_top = top_container(old), top_container(raw)
        if old_top is None or new_top is None or old_top[0] != new_top[0]:
            old_head = new_head = 0
        else:
            old_head, new_head = old_top[1], new_top[1]
        length = len(old) - old_head
        if length <= 0 or new_head + length > len(raw):
            return None
        # bytes.startswith compares with memcmp (a memoryview comparison
        # goes item by item, slower than the hashing it saves).
        if not raw.startswith(memoryview(old)[old_head:], new_head):
            return None
        return new_head, new_head + length, new_head - old_head


@dataclass
class ChunkPlan:
    """A large state cut into chunks and manifest nodes, before anything is compressed.

    Attributes:
        body: the version's manifest body.
        chunks: id -> the chunk's bytes (a view into the encoded state), in order.
        nodes: id -> a node's body.
        cut: what the cut found, for cutting the state's next version (see :class:`Cut`).
    """

    body: bytes
    chunks: dict[bytes, bytes | memoryview]
    nodes: dict[bytes, bytes | memoryview]
    cut: Cut | None = None

    @property
    def refs(self) -> list[bytes]:
        """Every piece the version needs: nodes first (top down), then chunks."""
        return [*self.nodes, *self.chunks]


def plan(
    raw: bytes, chunking: ChunkingParams, tree: TreeParams, previous: Cut | None = None
) -> ChunkPlan:
    """Cut ``raw`` (an encoded state) into chunks and build its manifest tree.

    ``previous``: the cut of an earlier version of the same state, whose
    chunk and node ids are reused where ``raw`` holds the same bytes.
    """
    view = memoryview(raw)
    chunks: dict[bytes, bytes | memoryview] = {}
    entries: list[_Entry] = []
    ids: dict[tuple[int, int], bytes] = {}
    shift = None if previous is None else previous.shift(raw, chunking)
    old_ids = {} if previous is None else previous.ids
    lo, hi, delta = shift or (0, 0, 0)
    ref_count = 0
    for kind, start, end in split(raw, chunking):
        if kind == CHUNK:
            ident = None
            if lo <= start and end <= hi:
                ident = old_ids.get((start - delta, end - delta))
            if ident is None:
                ident = piece_id(CHUNK_TAG, view[start:end])
            ids[(start, end)] = ident
            chunks.setdefault(ident, view[start:end])
            entries.append((ident,))
            ref_count += 1
        else:
            entries.append(raw[start:end])
    old_nodes = {} if previous is None else previous.nodes
    new_nodes: dict[tuple[_Entry, ...], tuple[bytes, bytes]] = {}
    levels: list[dict[bytes, bytes]] = []
    while ref_count > tree.top_max:
        level: dict[bytes, bytes] = {}
        entries = _group(entries, tree, level, old_nodes, new_nodes)
        levels.append(level)
        # Every node holds at least two references and a level closes at
        # least one node, so each pass has fewer references than the last.
        ref_count = sum(1 for entry in entries if isinstance(entry, tuple))
    nodes: dict[bytes, bytes | memoryview] = {}
    for level in reversed(levels):
        nodes.update(level)
    return ChunkPlan(_body(entries), chunks, nodes, Cut(raw, chunking, ids, new_nodes))


def _group(
    entries: list[_Entry],
    tree: TreeParams,
    level: dict[bytes, bytes],
    known: dict[tuple[_Entry, ...], tuple[bytes, bytes]],
    made: dict[tuple[_Entry, ...], tuple[bytes, bytes]],
) -> list[_Entry]:
    """Group one level's references into nodes (stored in ``level``); return the level above.

    A node closes after a reference whose id's first 4 bytes fall under a bar
    (a content-defined point, so an append only changes what follows the last
    one), once it holds two references at least, or when it is full.
    ``known``: nodes an earlier cut made (reused, not hashed again);
    ``made``: every node this cut makes or reuses.
    """
    bar = (1 << 32) // tree.fanout
    most = max(2, min(4 * tree.fanout, tree.top_max))
    grouped: list[_Entry] = []
    current: list[_Entry] = []
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
                grouped.append(_close(current, level, known, made))
                current, held = [], 0
    if current and not level:
        # Nothing closed at this level, so nothing would shrink: close it.
        grouped.append(_close(current, level, known, made))
    else:
        # The last group was not closed by a content-defined point: it stays
        # at this level, so an append makes a new node only when a group closes.
        grouped.extend(current)
    return grouped


def _close(
    entries: list[_Entry],
    level: dict[bytes, bytes],
    known: dict[tuple[_Entry, ...], tuple[bytes, bytes]],
    made: dict[tuple[_Entry, ...], tuple[bytes, bytes]],
) -> tuple[bytes]:
    key = tuple(entries)
    node = known.get(key)
    if node is None:
        body = _body(entries)
        node = (piece_id(NODE_TAG, body), body)
    made[key] = node
    level.setdefault(*node)
    return (node[0],)


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
