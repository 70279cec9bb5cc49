"""Where a large encoded state is cut into chunks: between the elements of its containers.

Agent states grow by appending to a container (a list of messages, a map of
tool results). Cutting the encoded bytes at fixed offsets, or by a rolling
hash over the bytes, shares little between versions: msgpack writes a
container's length in front of it, so an append rewrites the first chunk,
and the chunk at the end is rewritten too. So the cuts follow the structure:

1. The state's msgpack bytes are walked from the top (with ``msgspec.Raw``,
   so the walk runs at C speed). A container larger than the chunk target is
   opened: its header (which holds its length) becomes a *literal*, kept in
   the version's manifest, and its elements become *units*. An element that
   is still too large is opened in turn; a large string is cut between lines;
   anything else too large (bytes, an extension value, a map whose keys are
   not scalars) is cut at fixed offsets.
2. Consecutive units are grouped into chunks at content-defined points: a
   group ends after a unit whose CRC-32 falls under a bar proportional to the
   unit's size, so groups average ``target`` bytes whatever the units' sizes,
   and where a group ends depends only on the units' own bytes. An append
   adds chunks at the end; an insertion or an edit changes the chunks around
   it; the chunks before and after are the same bytes and are stored once.
3. A group smaller than ``inline_max`` is not worth a chunk of its own (its
   key, its reference and its bookkeeping would cost more than the bytes): it
   joins the literals, so small fields that change at every step (a step
   counter, a status) live in the manifest.

The output is the list of pieces, in order, whose concatenation is the input.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Final

import msgspec

__all__ = [
    "CHUNK",
    "LITERAL",
    "SIZE_CLASSES",
    "ChunkingParams",
    "params_for",
    "split",
    "top_container",
]

LITERAL: Final = 0
CHUNK: Final = 1
_UNIT: Final = 2

_raw_items = msgspec.msgpack.Decoder(list[msgspec.Raw])
_raw_values = msgspec.msgpack.Decoder(dict[Any, msgspec.Raw])


@dataclass(frozen=True)
class ChunkingParams:
    """How large chunks are.

    Attributes:
        target: the average chunk size aimed at, in bytes of encoded state.
        max_chunk: a unit larger than this is opened or cut.
        inline_max: a group this small is kept in the manifest, not stored as a chunk.
        max_depth: containers nested deeper than this are not opened.
    """

    target: int = 1024
    max_chunk: int = 4096
    inline_max: int = 96
    max_depth: int = 16


#: Chunk sizes by the size of the encoded state: ``(states from this many
#: bytes, their chunking)``. Small chunks share the most between versions (an
#: agent's message is about one chunk); a large state is read and written in
#: hundreds of chunks, each costing a little on the server and in the client,
#: so larger states get larger chunks. A state that crosses a class boundary
#: is cut anew once, and its next save sends it whole.
SIZE_CLASSES: Final = (
    (0, ChunkingParams(target=1024, max_chunk=4096)),
    (512 * 1024, ChunkingParams(target=8192, max_chunk=32768)),
    (4 * 1024 * 1024, ChunkingParams(target=32768, max_chunk=131072)),
)


def params_for(size: int) -> ChunkingParams:
    """Return the chunking of an encoded state of ``size`` bytes (see :data:`SIZE_CLASSES`)."""
    chosen = SIZE_CLASSES[0][1]
    for start, params in SIZE_CLASSES:
        if size >= start:
            chosen = params
    return chosen


def _container(first: int) -> tuple[str, int] | None:
    """Return ("array" | "map", header length) for a container's first byte, else ``None``."""
    if 0x90 <= first <= 0x9F:
        return "array", 1
    if 0x80 <= first <= 0x8F:
        return "map", 1
    if first in (0xDC, 0xDE):
        return ("array" if first == 0xDC else "map"), 3
    if first in (0xDD, 0xDF):
        return ("array" if first == 0xDD else "map"), 5
    return None


def top_container(raw: bytes) -> tuple[str, int] | None:
    """Return ("array" | "map", header length) of an encoded state that is a container, else ``None``."""
    return _container(raw[0]) if raw else None


def _string(raw: bytes, lo: int) -> int | None:
    """Return the header length of a str at ``lo`` (its text follows), else ``None``."""
    first = raw[lo]
    if 0xA0 <= first <= 0xBF:
        return 1
    return {0xD9: 2, 0xDA: 3, 0xDB: 5}.get(first)


def _scalar_size(raw: bytes, lo: int) -> int:
    """Return the encoded size of the scalar at ``lo`` (a map key), or -1 for anything else."""
    first = raw[lo]
    if first <= 0x7F or first >= 0xE0 or first in (0xC0, 0xC2, 0xC3):
        return 1
    if 0xA0 <= first <= 0xBF:
        return 1 + (first & 0x1F)
    if first in (0xD9, 0xC4):
        return 2 + raw[lo + 1]
    if first in (0xDA, 0xC5):
        return 3 + int.from_bytes(raw[lo + 1 : lo + 3], "big")
    if first in (0xDB, 0xC6):
        return 5 + int.from_bytes(raw[lo + 1 : lo + 5], "big")
    return {0xCC: 2, 0xD0: 2, 0xCD: 3, 0xD1: 3, 0xCE: 5, 0xD2: 5, 0xCA: 5}.get(
        first, 9 if first in (0xCF, 0xD3, 0xCB) else -1
    )


class _Walker:
    """Turns one encoded state into literals and units, in order."""

    def __init__(self, raw: bytes, params: ChunkingParams) -> None:
        self.raw = raw
        self.view = memoryview(raw)
        self.params = params
        self.out: list[tuple[int, int, int]] = []  # (kind, start, end)

    def walk(self, lo: int, hi: int, depth: int) -> None:
        params = self.params
        size = hi - lo
        # The top is opened from the target on, so a state a few chunks large
        # already shares its elements; below it, a value is opened from twice
        # the target, so elements of about the target's size stay whole.
        if size <= (params.target if depth == 0 else 2 * params.target):
            self.out.append((_UNIT, lo, hi))
            return
        if depth < params.max_depth:
            kind = _container(self.raw[lo])
            if kind is not None and self._open(kind[0], kind[1], lo, hi, depth):
                return
            header = _string(self.raw, lo)
            if header is not None and size > params.max_chunk:
                self.out.append((LITERAL, lo, lo + header))
                self._lines(lo + header, hi)
                return
        if size <= params.max_chunk:
            self.out.append((_UNIT, lo, hi))
        else:
            self._fixed(lo, hi)

    def _open(self, kind: str, header: int, lo: int, hi: int, depth: int) -> bool:
        """Emit the container's header and its elements; ``False`` if it cannot be opened."""
        raw, view = self.raw, self.view
        spans: list[tuple[int, int, int]] = []  # (start, value start, end)
        offset = lo + header
        try:
            if kind == "array":
                for item in _raw_items.decode(view[lo:hi]):
                    size = len(memoryview(item))
                    spans.append((offset, offset, offset + size))
                    offset += size
            else:
                for encoded in _raw_values.decode(view[lo:hi]).values():
                    key = _scalar_size(raw, offset)
                    if key < 0:
                        return False
                    size = len(memoryview(encoded))
                    spans.append((offset, offset + key, offset + key + size))
                    offset += key + size
        except (msgspec.DecodeError, TypeError):
            return False  # keys that are not hashable, or bytes that are not msgpack
        if offset != hi:
            return False  # duplicate keys, or a writer with other header sizes
        self.out.append((LITERAL, lo, lo + header))
        small = 2 * self.params.target
        for start, value_start, end in spans:
            if end - start <= small:
                self.out.append((_UNIT, start, end))
                continue
            if value_start > start:
                self.out.append((LITERAL, start, value_start))  # the key of a large value
            self.walk(value_start, end, depth + 1)
        return True

    def _lines(self, lo: int, hi: int) -> None:
        """Units of whole lines (text edited in the middle keeps its other lines' chunks)."""
        raw, max_chunk = self.raw, self.params.max_chunk
        start = lo
        while start < hi:
            stop = min(hi, start + max_chunk)
            newline = raw.find(b"\n", start, stop)
            end = stop if newline < 0 else newline + 1
            self.out.append((_UNIT, start, end))
            start = end

    def _fixed(self, lo: int, hi: int) -> None:
        step = self.params.target
        for start in range(lo, hi, step):
            self.out.append((_UNIT, start, min(hi, start + step)))


def split(raw: bytes, params: ChunkingParams) -> list[tuple[int, int, int]]:
    """Return ``raw`` as pieces ``(kind, start, end)``, kind ``LITERAL`` or ``CHUNK``, in order.

    The pieces cover ``raw`` exactly; adjacent literals are merged.
    """
    walker = _Walker(raw, params)
    walker.walk(0, len(raw), 0)
    pieces: list[tuple[int, int, int]] = []
    view = walker.view
    # A unit ends its group with probability size / target: bar = size * 2**32 / target.
    scale = (1 << 32) // params.target
    inline_max = params.inline_max
    group_start = -1
    group_end = -1

    def emit(kind: int, start: int, end: int) -> None:
        if kind == CHUNK and end - start <= inline_max:
            kind = LITERAL
        if kind == LITERAL and pieces and pieces[-1][0] == LITERAL and pieces[-1][2] == start:
            pieces[-1] = (LITERAL, pieces[-1][1], end)
        else:
            pieces.append((kind, start, end))

    for kind, start, end in walker.out:
        if kind == LITERAL:
            if group_start >= 0:
                emit(CHUNK, group_start, group_end)
                group_start = -1
            emit(LITERAL, start, end)
            continue
        if group_start < 0:
            group_start = start
        group_end = end
        if group_end - group_start >= params.max_chunk or zlib.crc32(view[start:end]) < scale * (
            end - start
        ):
            emit(CHUNK, group_start, group_end)
            group_start = -1
    if group_start >= 0:
        emit(CHUNK, group_start, group_end)
    return pieces
