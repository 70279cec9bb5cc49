"""Chunking and manifests alone (no Redis): where states are cut, what versions share, round trips."""

from __future__ import annotations

import itertools
import random
import string
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recostate import CompressionType, IntegrityError
from recostate._codec import Codec, KnownPieces, StoredVersion, VersionHeader
from recostate._codec.chunking import (
    CHUNK,
    LITERAL,
    SIZE_CLASSES,
    ChunkingParams,
    params_for,
    split,
)
from recostate._codec.manifest import TreeParams, body_refs, expand, plan
from recostate._signing import SigningKeys

from .strategies import msgpack_states

BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = ChunkingParams(target=64, max_chunk=256, inline_max=16)


def message(rng: random.Random, step: int) -> dict[str, Any]:
    words = " ".join("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(200))
    return {"role": rng.choice(["user", "assistant", "tool"]), "content": words, "step": step}


def agent_state(steps: int, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    return {"thread": "t-1", "step": steps, "messages": [message(rng, i) for i in range(steps)]}


def pieces_of(raw: bytes, chunking: ChunkingParams | None = None) -> Any:
    return plan(raw, chunking or params_for(len(raw)), TreeParams())


def round_trip(raw: bytes, chunking: ChunkingParams, tree: TreeParams | None = None) -> None:
    made = plan(raw, chunking, tree or TreeParams())
    out: list[bytes | memoryview] = []
    expand(made.body, {k: bytes(v) for k, v in made.chunks.items()}, made.nodes, out)
    assert b"".join(out) == raw


# -- split --------------------------------------------------------------------------------


def test_split_covers_the_input_exactly_and_merges_literals() -> None:
    raw = msgspec.msgpack.encode(agent_state(12))
    pieces = split(raw, ChunkingParams())
    assert pieces[0][1] == 0 and pieces[-1][2] == len(raw)
    for (_, _, end), (_, start, _) in itertools.pairwise(pieces):
        assert end == start
    for first, second in itertools.pairwise(pieces):
        assert not (first[0] == LITERAL and second[0] == LITERAL)
    # A message is about the target: each is a chunk of its own.
    assert sum(1 for kind, _, _ in pieces if kind == CHUNK) == 12


def test_an_append_keeps_every_chunk_of_the_state_before_it() -> None:
    before = pieces_of(msgspec.msgpack.encode(agent_state(40)))
    after = pieces_of(msgspec.msgpack.encode(agent_state(41)))
    # The list's header and the step counter changed: they live in the manifest.
    assert set(before.chunks) <= set(after.chunks)
    assert len(set(after.chunks) - set(before.chunks)) == 1
    first_before = body_refs(before.body)[0]
    assert first_before in set(after.chunks) | set(after.nodes)


def test_an_insertion_changes_only_the_chunks_around_it() -> None:
    state = agent_state(60)
    before = pieces_of(msgspec.msgpack.encode(state))
    state["messages"].insert(30, message(random.Random(99), 999))
    after = pieces_of(msgspec.msgpack.encode(state))
    assert len(set(after.chunks) - set(before.chunks)) <= 2
    assert len(set(before.chunks) - set(after.chunks)) <= 2


def test_a_large_text_is_cut_between_lines() -> None:
    text = "\n".join(f"line {i}: " + "word " * (i % 23) for i in range(4000))
    before = pieces_of(msgspec.msgpack.encode({"doc": text}))
    edited = text.replace("line 2000: ", "line 2000 (edited): ")
    after = pieces_of(msgspec.msgpack.encode({"doc": edited}))
    assert len(set(after.chunks) - set(before.chunks)) <= 2


def test_chunks_grow_with_the_state() -> None:
    assert [start for start, _ in SIZE_CLASSES] == sorted(start for start, _ in SIZE_CLASSES)
    assert params_for(10_000).target < params_for(1 << 20).target < params_for(8 << 20).target
    big = pieces_of(msgspec.msgpack.encode(agent_state(800)))
    small = pieces_of(msgspec.msgpack.encode(agent_state(300)))
    assert len(big.chunks) < len(small.chunks)


def test_manifests_stay_small_as_a_state_grows() -> None:
    tree = TreeParams()
    for steps in (50, 300, 2000):
        made = plan(msgspec.msgpack.encode(agent_state(steps)), ChunkingParams(), tree)
        assert len(body_refs(made.body)) <= tree.top_max + 4 * tree.fanout


# -- cutting again from an earlier cut ----------------------------------------------------


def _same_plan(left: Any, right: Any) -> bool:
    return (
        left.body == right.body
        and {k: bytes(v) for k, v in left.chunks.items()}
        == {k: bytes(v) for k, v in right.chunks.items()}
        and {k: bytes(v) for k, v in left.nodes.items()}
        == {k: bytes(v) for k, v in right.nodes.items()}
    )


def test_a_grown_list_cut_from_its_previous_cut_hashes_only_the_new_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from recostate._codec import manifest

    rng = random.Random(5)
    messages = [message(rng, i) for i in range(60)]
    tree = TreeParams()
    previous = None
    hashed: list[int] = []
    real_piece_id = manifest.piece_id

    def counting(tag: bytes, contents: bytes | memoryview) -> bytes:
        hashed.append(len(contents))
        return real_piece_id(tag, contents)

    for steps in range(10, 61, 10):
        # A bare list: its msgpack header grows from 1 to 3 bytes at 16 elements.
        raw = msgspec.msgpack.encode(messages[:steps])
        fresh = plan(raw, ChunkingParams(), tree)
        monkeypatch.setattr(manifest, "piece_id", counting)
        hashed.clear()
        again = plan(raw, ChunkingParams(), tree, previous)
        monkeypatch.setattr(manifest, "piece_id", real_piece_id)
        assert _same_plan(fresh, again)
        if previous is not None:
            # The ten new messages' chunks and a few nodes, not the whole list.
            assert sum(hashed) < len(raw) - len(previous.raw) + 2000
        previous = again.cut


def test_a_cut_of_other_bytes_is_never_reused_wrongly() -> None:
    rng = random.Random(6)
    messages = [message(rng, i) for i in range(40)]
    tree = TreeParams()
    old = plan(msgspec.msgpack.encode(messages), ChunkingParams(), tree)
    edited = [dict(m) for m in messages]
    edited[3]["content"] = edited[3]["content"].upper()  # same length, other bytes
    for state in (edited, messages[:20], {"messages": messages}, messages[5:]):
        raw = msgspec.msgpack.encode(state)
        assert _same_plan(
            plan(raw, ChunkingParams(), tree, old.cut), plan(raw, ChunkingParams(), tree)
        )
    # Cut with other chunk sizes: nothing is reused.
    raw = msgspec.msgpack.encode(messages + messages[:1])
    small = plan(raw, SMALL, tree, old.cut)
    assert _same_plan(small, plan(raw, SMALL, tree))


# -- round trips, for anything ------------------------------------------------------------

JSONISH = msgpack_states(max_leaves=200, max_items=12)


@BOUNDED
@given(JSONISH)
def test_any_state_round_trips_through_small_chunks(state: Any) -> None:
    round_trip(msgspec.msgpack.encode(state), SMALL, TreeParams(top_max=2, fanout=2))


@BOUNDED
@given(st.binary(max_size=5000))
def test_bytes_that_are_not_msgpack_round_trip_too(raw: bytes) -> None:
    round_trip(raw, SMALL, TreeParams(top_max=2, fanout=2))


@BOUNDED
@given(st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=300))
def test_trees_end_even_when_every_id_is_a_cut_point(ids: list[bytes]) -> None:
    # Ids chosen by content an adversary controls cannot make the tree loop.
    state = [i.hex() * 8 for i in ids]
    round_trip(msgspec.msgpack.encode(state), SMALL, TreeParams(top_max=2, fanout=2))


# -- the codec's chunked versions -----------------------------------------------------------


def codec(compression: CompressionType = CompressionType.LZ4, **options: Any) -> Codec:
    return Codec(
        compression=compression,
        compression_threshold=64,
        offload_threshold=1 << 30,
        max_payload_bytes=1 << 30,
        chunk_threshold=4096,
        **options,
    )


def header(raw: bytes) -> VersionHeader:
    return VersionHeader(1_700_000_000_000, len(raw), 0, 0, ("t",))


def stored(encoded: Any, known: KnownPieces | None = None) -> StoredVersion:
    pieces = dict(encoded.pieces)
    if known is not None:
        return StoredVersion(encoded.frame, pieces, None, held=known)
    return StoredVersion(encoded.frame, pieces, encoded.dictionary_frame or None)


@pytest.mark.parametrize("compression", list(CompressionType))
def test_a_chunked_version_round_trips_with_its_dictionary(compression: CompressionType) -> None:
    state = agent_state(30)
    raw = msgspec.msgpack.encode(state)
    made = codec(compression).encode_now(raw, header(raw), "s")
    assert made.info.chunked and made.pieces
    assert bool(made.dictionary_frame) is (compression is not CompressionType.NONE)
    got, info = codec().decode_now(stored(made), "s", 1)
    assert got == state and info == made.info
    assert info.stored_bytes == len(made.frame) + sum(len(f) for _, f in made.pieces)


def test_a_second_save_sends_only_new_pieces_and_loads_with_what_is_held() -> None:
    writer = codec()
    first_raw = msgspec.msgpack.encode(agent_state(30))
    first = writer.encode_now(first_raw, header(first_raw), "s")
    known = KnownPieces(
        dict(first.refs), first.dictionary_id, first.dictionary, first.chunks, first.nodes
    )
    raw = msgspec.msgpack.encode(agent_state(31))
    second = writer.encode_now(raw, header(raw), "s", known)
    # The new message's chunk, and at most a node closed by it.
    assert sum(1 for _, f in second.pieces if f[2] == 3) == 1 and len(second.pieces) <= 2
    assert not second.dictionary_frame
    assert second.sent_bytes < 4096 < len(raw) // 10
    state, _ = codec().decode_now(stored(second, known), "s", 2)
    assert state == agent_state(31)


def test_a_chunk_that_is_not_there_or_damaged_is_an_integrity_error() -> None:
    raw = msgspec.msgpack.encode(agent_state(30))
    made = codec().encode_now(raw, header(raw), "s")
    version = stored(made)
    ident, data = next(iter(version.pieces.items()))
    missing = StoredVersion(made.frame, {k: v for k, v in version.pieces.items() if k != ident}, version.dictionary)
    with pytest.raises(IntegrityError, match="missing"):
        codec().decode_now(missing, "s", 1)
    damaged = dict(version.pieces)
    damaged[ident] = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(IntegrityError):
        codec().decode_now(StoredVersion(made.frame, damaged, version.dictionary), "s", 1)


def test_under_a_signing_key_a_chunk_must_be_what_its_id_names() -> None:
    signed = Codec(
        compression=CompressionType.NONE,
        compression_threshold=64,
        offload_threshold=1 << 30,
        max_payload_bytes=1 << 30,
        chunk_threshold=4096,
        signing=SigningKeys.build(b"k" * 32),
    )
    raw = msgspec.msgpack.encode(agent_state(30))
    made = signed.encode_now(raw, header(raw), "s")
    version = stored(made)
    ids = [i for i, f in version.pieces.items() if f[2] == 3]
    # Swap two chunks' frames (each a sound frame with a valid CRC): the
    # manifest's ids no longer match their contents.
    pieces = dict(version.pieces)
    pieces[ids[0]], pieces[ids[1]] = pieces[ids[1]], pieces[ids[0]]
    with pytest.raises(IntegrityError):
        signed.decode_now(StoredVersion(made.frame, pieces, None), "s", 1)
    assert signed.decode_now(version, "s", 1)[0] == agent_state(30)
