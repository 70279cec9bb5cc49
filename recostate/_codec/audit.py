"""A check of everything one state stores: every piece sound, every reference exact.

``recostate verify`` runs it on each state, and the tests run it after every
step of their model: no piece is orphaned (stored with nothing referring to
it), none is dangling (referred to but missing), every reference count is
the number of versions and nodes that refer to the piece, every chunk
decompresses to the bytes its id names, and the state's dictionary is the
one its chunks were compressed with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import msgspec

from recostate._codec import frame as frames
from recostate._codec.compression import CODECS_BY_ID, DecompressionError, decompress
from recostate._codec.headers import header_decoder
from recostate._codec.manifest import CHUNK_TAG, NODE_TAG, ManifestError, body_refs, piece_id
from recostate._codec.policy import Codec
from recostate._errors import IntegrityError

__all__ = ["audit"]


def audit(
    codec: Codec,
    versions: Sequence[tuple[int, bytes | None]],
    pieces: Sequence[tuple[bytes, bytes, int | None]],
    dictionary: bytes | None,
    state_id: str,
) -> list[str]:
    """Return one line per problem found in a state's versions and pieces (``[]``: sound)."""
    problems: list[str] = []
    expected: Counter[bytes] = Counter()
    for number, data in versions:
        if data is None:
            problems.append(f"version {number} is listed but not stored")
            continue
        try:
            parsed = frames.parse(data)
            if parsed.kind == frames.KIND_MANIFEST:
                expected.update(body_refs(parsed.payload))
        except (frames.FrameError, ManifestError) as exc:
            problems.append(f"version {number} is unreadable: {exc}")
    dictionary_id = b""
    contents = b""
    if dictionary is not None:
        try:
            contents = codec.dictionary_contents(dictionary, state_id, None)
            dictionary_id = codec.dictionary_id(contents)
        except IntegrityError as exc:
            problems.append(exc.reason)
    stored: dict[bytes, int | None] = {}
    for ident, data, count in pieces:
        stored[ident] = count
        try:
            parsed = frames.parse(data)
            if not parsed.verify_crc():
                problems.append(f"piece {ident.hex()} fails its checksum")
                continue
            if parsed.kind == frames.KIND_NODE:
                if piece_id(NODE_TAG, parsed.payload) != ident:
                    problems.append(f"piece {ident.hex()} is not what its id says")
                expected.update(body_refs(parsed.payload))
                continue
            if parsed.kind != frames.KIND_CHUNK:
                problems.append(f"piece {ident.hex()} is neither a chunk nor a node")
                continue
            header = header_decoder.chunk.decode(parsed.header)
            if header.dictionary and header.dictionary != dictionary_id:
                problems.append(f"piece {ident.hex()} needs a dictionary the state does not hold")
                continue
            raw = decompress(
                CODECS_BY_ID[parsed.codec_id],
                parsed.payload,
                header.size_bytes,
                contents if header.dictionary else b"",
            )
            if piece_id(CHUNK_TAG, raw) != ident:
                problems.append(f"piece {ident.hex()} is not what its id says")
        except (frames.FrameError, ManifestError, msgspec.DecodeError, KeyError, DecompressionError) as exc:
            problems.append(f"piece {ident.hex()} is unreadable: {exc}")
    for ident, wanted in sorted(expected.items()):
        if ident not in stored:
            problems.append(f"piece {ident.hex()} is referred to {wanted} time(s) but missing")
        elif stored[ident] != wanted:
            problems.append(
                f"piece {ident.hex()} counts {stored[ident]} reference(s), holds {wanted}"
            )
    for ident in sorted(set(stored) - set(expected)):
        problems.append(f"piece {ident.hex()} is stored but nothing refers to it")
    if not stored and dictionary is not None:
        problems.append("the state keeps a dictionary but no piece")
    return problems
