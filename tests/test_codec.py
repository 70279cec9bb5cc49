"""The codec alone (no Redis): whole frames, compression, checksum, and corruption handling.

Chunked versions have their own file, ``tests/test_chunks.py``.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import zlib
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recostate import CompressionType, IntegrityError, PayloadTooLargeError, SerializationError
from recostate._codec import Codec, EncodedVersion, StoredVersion, VersionHeader, VersionInfo

from .strategies import msgpack_states

FrameHeader = VersionHeader

PREFIX = struct.Struct(">2sBBBBI")
CODEC_IDS = {CompressionType.NONE: 0, CompressionType.LZ4: 1, CompressionType.ZLIB: 2}
HEADER = FrameHeader(1_700_000_000_123, 0, 60, 0, ("alpha", "beta"))
BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

COMPRESSIBLE = {"text": "abcdefgh" * 400, "n": list(range(50))}
SMALL = {"a": 1, "b": "xyz", "c": [1.5, None, True]}


class Agent(msgspec.Struct):
    name: str
    step: int


@dataclasses.dataclass
class Point:
    x: int
    y: int


class WholeCodec(Codec):
    """The codec with whole frames only, and the two calls these tests make most."""

    def decode_frame(
        self, frame: bytes, state_id: str, version: int, type_: Any = None
    ) -> tuple[Any, VersionInfo]:
        return self.decode_now(StoredVersion(frame), state_id, version, type_)

    def build_frame(self, raw: bytes, header: FrameHeader, state_id: str = "") -> EncodedVersion:
        return self.encode_now(raw, header, state_id)


def make_codec(
    compression: CompressionType = CompressionType.LZ4,
    *,
    threshold: int = 1024,
    offload: int = 1 << 30,
    max_payload: int = 64 * 1024 * 1024,
) -> WholeCodec:
    return WholeCodec(
        compression=compression,
        compression_threshold=threshold,
        offload_threshold=offload,
        max_payload_bytes=max_payload,
        chunk_threshold=None,
    )


def build(codec: WholeCodec, state: object, header: FrameHeader = HEADER) -> EncodedVersion:
    raw = codec.encode_state(state)
    return codec.build_frame(raw, FrameHeader(header.updated_at_ms, len(raw), header.ttl,
                                              header.rolled_back_from, header.tags))


def split(data: bytes) -> tuple[tuple[Any, ...], bytes, bytes, bytes]:
    """Return (prefix fields, checksum, header, payload) of a well-formed frame."""
    fields = PREFIX.unpack_from(data)
    checksum_len, header_len = fields[4], fields[5]
    start = PREFIX.size + checksum_len
    return (
        fields,
        data[PREFIX.size : start],
        data[start : start + header_len],
        data[start + header_len :],
    )


def forge(
    payload: bytes,
    header: bytes,
    *,
    codec_id: int = 0,
    magic: bytes = b"RS",
    fmt: int = 1,
    algo: int = 1,
    header_len: int | None = None,
) -> bytes:
    """Assemble a frame from its parts with a *correct* CRC-32 (a consistent forgery)."""
    prefix = PREFIX.pack(magic, fmt, codec_id, algo, 4, len(header) if header_len is None else header_len)
    crc = zlib.crc32(prefix + header + payload).to_bytes(4, "big")
    return prefix + crc + header + payload


def header_bytes(size_bytes: int, tags: tuple[str, ...] = ()) -> bytes:
    return msgspec.msgpack.encode(FrameHeader(1_700_000_000_000, size_bytes, 0, 0, tags))


def small_frames() -> list[EncodedVersion]:
    """Small frames of each codec (compressed ones forced with a zero threshold)."""
    state = {"k": "abc" * 20, "n": [1, 2, 3]}
    return [
        build(make_codec(CompressionType.NONE), state),
        build(make_codec(CompressionType.LZ4, threshold=0), state),
        build(make_codec(CompressionType.ZLIB, threshold=0), state),
    ]


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("compression", list(CompressionType))
def test_round_trip_each_compression_type(compression: CompressionType) -> None:
    codec = make_codec(compression)
    frame = build(codec, COMPRESSIBLE)
    assert frame.info.compression is compression
    assert frame.info.stored_bytes == len(frame.frame)
    assert frame.info.header.size_bytes == len(msgspec.msgpack.encode(COMPRESSIBLE))
    if compression is not CompressionType.NONE:
        assert frame.info.stored_bytes < frame.info.header.size_bytes
    state, parsed = codec.decode_frame(frame.frame, "s", 1)
    assert state == COMPRESSIBLE
    assert parsed == frame.info
    assert parsed.header.tags == ("alpha", "beta")
    assert parsed.header.ttl == 60


@pytest.mark.parametrize("writer", list(CompressionType))
@pytest.mark.parametrize("reader", list(CompressionType))
def test_any_codec_reads_any_frame(writer: CompressionType, reader: CompressionType) -> None:
    frame = build(make_codec(writer), COMPRESSIBLE)
    state, parsed = make_codec(reader).decode_frame(frame.frame, "s", 1)
    assert state == COMPRESSIBLE
    assert parsed.compression is writer


@pytest.mark.parametrize(
    "state",
    [
        None,
        0,
        -(2**63),
        2**64 - 1,
        1.25,
        "",
        "héllo 🙂",
        b"\x00\xffbytes",
        [1, [2, [3]]],
        {"nested": {"list": [1, 2], "none": None}},
        [True, False],
    ],
)
def test_round_trip_builtin_values(state: object) -> None:
    codec = make_codec(CompressionType.LZ4, threshold=0)
    frame = build(codec, state)
    assert codec.decode_frame(frame.frame, "s", 1)[0] == state


def test_typed_decode_of_struct_and_dataclass() -> None:
    codec = make_codec()
    frame = build(codec, Agent("a", 3))
    assert codec.decode_frame(frame.frame, "s", 1, Agent)[0] == Agent("a", 3)
    assert codec.decode_frame(frame.frame, "s", 1)[0] == {"name": "a", "step": 3}
    frame = build(codec, Point(1, 2))
    assert codec.decode_frame(frame.frame, "s", 1, Point)[0] == Point(1, 2)


def test_typed_decode_mismatch_is_serialization_error() -> None:
    codec = make_codec()
    frame = build(codec, {"name": "a", "step": "not an int"})
    with pytest.raises(SerializationError):
        codec.decode_frame(frame.frame, "s", 1, Agent)
    frame = build(codec, {"a": 1})
    with pytest.raises(SerializationError):
        codec.decode_frame(frame.frame, "s", 1, list[int])


def test_frame_layout_matches_the_documented_prefix() -> None:
    codec = make_codec(CompressionType.ZLIB, threshold=0)
    frame = build(codec, COMPRESSIBLE)
    (magic, fmt, codec_id, algo, checksum_len, header_len), _, header, _ = split(frame.frame)
    assert (magic, fmt, codec_id, algo, checksum_len) == (b"RS", 1, 2, 1, 4)
    assert header_len == len(header)
    assert msgspec.msgpack.decode(header, type=FrameHeader) == frame.info.header


# -- compression choice -------------------------------------------------------------------


@pytest.mark.parametrize("compression", [CompressionType.LZ4, CompressionType.ZLIB])
def test_below_threshold_is_stored_uncompressed(compression: CompressionType) -> None:
    state = "a" * 500  # very compressible, but under the threshold
    raw_len = len(msgspec.msgpack.encode(state))
    below = build(make_codec(compression, threshold=raw_len + 1), state)
    assert below.info.compression is CompressionType.NONE
    assert split(below.frame)[3] == msgspec.msgpack.encode(state)
    at = build(make_codec(compression, threshold=raw_len), state)
    assert at.info.compression is compression
    assert make_codec(compression).decode_frame(at.frame, "s", 1)[0] == state


@pytest.mark.parametrize("compression", [CompressionType.LZ4, CompressionType.ZLIB])
def test_incompressible_payload_is_stored_uncompressed(compression: CompressionType) -> None:
    state = os.urandom(8192)
    frame = build(make_codec(compression, threshold=0), state)
    assert frame.info.compression is CompressionType.NONE
    assert split(frame.frame)[3] == msgspec.msgpack.encode(state)
    assert make_codec().decode_frame(frame.frame, "s", 1)[0] == state


# -- checksum -----------------------------------------------------------------------------


def test_checksum_string_form() -> None:
    for frame in small_frames():
        checksum = frame.info.checksum
        algo, _, digest = checksum.partition(":")
        assert algo == "crc32"
        assert len(digest) == 8 and digest == digest.lower()
        int(digest, 16)
        # CRC-32 over everything but the checksum field itself.
        expected = zlib.crc32(frame.frame[:10] + frame.frame[14:])
        assert digest == f"{expected:08x}"
        assert frame.frame[10:14] == expected.to_bytes(4, "big")


def test_parse_header_reads_fields_without_payload() -> None:
    codec = make_codec(CompressionType.LZ4, threshold=0)
    frame = build(codec, COMPRESSIBLE)
    head = frame.frame[:64]
    parsed = codec.parse_header(head, "s", 1, len(frame.frame))
    assert parsed == frame.info


# -- corruption ---------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(3), ids=["none", "lz4", "zlib"])
def test_every_single_bit_flip_is_an_integrity_error(index: int) -> None:
    frame = small_frames()[index]
    codec = make_codec()
    assert len(frame.frame) < 200
    for bit in range(len(frame.frame) * 8):
        corrupt = bytearray(frame.frame)
        corrupt[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(IntegrityError) as info:
            codec.decode_frame(bytes(corrupt), "sid", 7)
        assert info.value.state_id == "sid"
        assert info.value.version == 7


@pytest.mark.parametrize("index", range(3), ids=["none", "lz4", "zlib"])
def test_every_truncation_is_an_integrity_error(index: int) -> None:
    frame = small_frames()[index]
    codec = make_codec()
    for length in range(len(frame.frame)):
        with pytest.raises(IntegrityError):
            codec.decode_frame(frame.frame[:length], "s", 1)


def test_trailing_bytes_are_an_integrity_error() -> None:
    codec = make_codec()
    for frame in small_frames():
        with pytest.raises(IntegrityError):
            codec.decode_frame(frame.frame + b"\x00", "s", 1)


@pytest.mark.parametrize("codec_byte", [3, 7, 128, 255])
def test_unknown_codec_byte_is_an_integrity_error(codec_byte: int) -> None:
    codec = make_codec()
    for frame in small_frames():
        _, _, header, payload = split(frame.frame)
        # Unchanged checksum, and a consistently re-checksummed frame.
        corrupt = bytearray(frame.frame)
        corrupt[3] = codec_byte
        with pytest.raises(IntegrityError):
            codec.decode_frame(bytes(corrupt), "s", 1)
        with pytest.raises(IntegrityError):
            codec.decode_frame(forge(payload, header, codec_id=codec_byte), "s", 1)


def test_codec_byte_naming_another_known_codec_is_an_integrity_error() -> None:
    codec = make_codec()
    for frame in small_frames():
        _, _, header, payload = split(frame.frame)
        actual = CODEC_IDS[frame.info.compression]
        for other in set(CODEC_IDS.values()) - {actual}:
            with pytest.raises(IntegrityError):
                codec.decode_frame(forge(payload, header, codec_id=other), "s", 1)


@pytest.mark.parametrize(
    "change",
    [
        {"magic": b"XS"},
        {"magic": b"rs"},
        {"magic": b"\x00\x00"},
        {"fmt": 0},
        {"fmt": 3},  # a chunk, not a version
        {"fmt": 6},
        {"fmt": 255},
        {"algo": 0},
        {"algo": 2},
    ],
)
def test_wrong_magic_format_or_algorithm_is_an_integrity_error(change: dict[str, Any]) -> None:
    codec = make_codec()
    for frame in small_frames():
        _, _, header, payload = split(frame.frame)
        forged = forge(payload, header, codec_id=CODEC_IDS[frame.info.compression], **change)
        with pytest.raises(IntegrityError):
            codec.decode_frame(forged, "s", 1)
        with pytest.raises(IntegrityError):
            codec.parse_header(forged, "s", 1)


@pytest.mark.parametrize("checksum_len", [0, 3, 8, 255])
def test_wrong_checksum_length_is_an_integrity_error(checksum_len: int) -> None:
    codec = make_codec()
    frame = small_frames()[0]
    corrupt = bytearray(frame.frame)
    corrupt[5] = checksum_len
    with pytest.raises(IntegrityError):
        codec.decode_frame(bytes(corrupt), "s", 1)


def test_header_length_too_big_or_too_small_is_an_integrity_error() -> None:
    codec = make_codec()
    for frame in small_frames():
        _, _, header, payload = split(frame.frame)
        codec_id = CODEC_IDS[frame.info.compression]
        for header_len in (len(header) + 1, len(header) + len(payload), len(frame.frame),
                           2**32 - 1, len(header) - 1, 0):
            forged = forge(payload, header, codec_id=codec_id, header_len=header_len)
            with pytest.raises(IntegrityError):
                codec.decode_frame(forged, "s", 1)
            corrupt = bytearray(frame.frame)
            corrupt[6:10] = header_len.to_bytes(4, "big")
            with pytest.raises(IntegrityError):
                codec.decode_frame(bytes(corrupt), "s", 1)


def test_lz4_and_zlib_payloads_swapped_are_integrity_errors() -> None:
    lz4_frame = build(make_codec(CompressionType.LZ4, threshold=0), COMPRESSIBLE)
    zlib_frame = build(make_codec(CompressionType.ZLIB, threshold=0), COMPRESSIBLE)
    _, _, lz4_header, lz4_payload = split(lz4_frame.frame)
    _, _, zlib_header, zlib_payload = split(zlib_frame.frame)
    assert lz4_header == zlib_header  # same state, same header: only the payloads differ
    codec = make_codec()
    # A zlib stream labelled LZ4 and the reverse, checksums made consistent.
    with pytest.raises(IntegrityError):
        codec.decode_frame(forge(zlib_payload, lz4_header, codec_id=1), "s", 1)
    with pytest.raises(IntegrityError):
        codec.decode_frame(forge(lz4_payload, zlib_header, codec_id=2), "s", 1)
    # The same swaps spliced into the stored frames, checksums left alone.
    prefix_len = len(lz4_frame.frame) - len(lz4_payload)
    with pytest.raises(IntegrityError):
        codec.decode_frame(lz4_frame.frame[:prefix_len] + zlib_payload, "s", 1)
    prefix_len = len(zlib_frame.frame) - len(zlib_payload)
    with pytest.raises(IntegrityError):
        codec.decode_frame(zlib_frame.frame[:prefix_len] + lz4_payload, "s", 1)


@pytest.mark.parametrize("compression", list(CompressionType))
def test_another_frames_payload_swapped_in_is_an_integrity_error(compression: CompressionType) -> None:
    codec = make_codec(compression, threshold=0)
    first = build(codec, {"text": "first " * 300})
    second = build(codec, {"text": "the second one " * 200, "extra": list(range(30))})
    fields, _, first_header, first_payload = split(first.frame)
    _, _, _, second_payload = split(second.frame)
    assert first.info.header.size_bytes != second.info.header.size_bytes
    # Spliced, checksum unchanged.
    with pytest.raises(IntegrityError):
        codec.decode_frame(first.frame[: len(first.frame) - len(first_payload)] + second_payload, "s", 1)
    # Spliced and re-checksummed: the announced size no longer holds.
    with pytest.raises(IntegrityError):
        codec.decode_frame(forge(second_payload, first_header, codec_id=fields[2]), "s", 1)


@pytest.mark.parametrize("codec_id", [1, 2])
def test_zip_bomb_is_refused_without_inflating_it(codec_id: int) -> None:
    """A tiny payload announcing a small size but inflating to much more is refused."""
    raw = msgspec.msgpack.encode(b"\x00" * (8 * 1024 * 1024))
    if codec_id == 1:
        import lz4.block

        payload = lz4.block.compress(raw, store_size=False)
    else:
        payload = zlib.compress(raw, 9)
    forged = forge(payload, header_bytes(100), codec_id=codec_id)
    with pytest.raises(IntegrityError):
        make_codec().decode_frame(forged, "s", 1)


def test_payload_that_is_not_msgpack_is_an_integrity_error() -> None:
    payload = b"\xc1\xc1\xc1"  # 0xc1 is never used in msgpack
    forged = forge(payload, header_bytes(len(payload)), codec_id=0)
    with pytest.raises(IntegrityError):
        make_codec().decode_frame(forged, "s", 1)
    with pytest.raises(IntegrityError):
        make_codec().decode_frame(forged, "s", 1, Agent)


def test_header_that_is_not_a_frame_header_is_an_integrity_error() -> None:
    codec = make_codec()
    for header in (msgspec.msgpack.encode({"a": 1}), msgspec.msgpack.encode([1, 2]),
                   msgspec.msgpack.encode([0, 1, 0, 0, [5]]), b"", b"\xc1"):
        forged = forge(b"\x01", header, codec_id=0)
        with pytest.raises(IntegrityError):
            codec.decode_frame(forged, "s", 1)
        with pytest.raises(IntegrityError):
            codec.parse_header(forged, "s", 1)


@pytest.mark.parametrize(("codec_id", "size"), [(1, 2**31), (1, 2**40), (2, 2**63), (1, 2**64 - 1)])
def test_absurd_announced_size_is_an_integrity_error(codec_id: int, size: int) -> None:
    forged = forge(b"\x01\x02\x03", header_bytes(size), codec_id=codec_id)
    with pytest.raises(IntegrityError):
        make_codec().decode_frame(forged, "s", 1)


def test_payload_nested_too_deep_is_an_integrity_error() -> None:
    payload = b"\x91" * 100_000 + b"\xc0"  # [[[[...nil...]]]]
    forged = forge(payload, header_bytes(len(payload)), codec_id=0)
    with pytest.raises(IntegrityError):
        make_codec().decode_frame(forged, "s", 1)


# -- hypothesis: random bytes and random mutations ----------------------------------------


@BOUNDED
@given(st.binary(max_size=300))
def test_random_bytes_are_an_integrity_error(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        make_codec().decode_frame(data, "s", 1)


@BOUNDED
@given(
    st.sampled_from([b"RS", b"RT"]),
    st.integers(0, 2),
    st.integers(0, 3),
    st.sampled_from([1, 2]),
    st.sampled_from([4, 0, 37, 40]) | st.integers(0, 255),
    st.integers(0, 2**32 - 1) | st.integers(0, 40),
    st.binary(max_size=200),
)
def test_random_bytes_behind_a_plausible_prefix_are_an_integrity_error(
    magic: bytes, fmt: int, codec_id: int, algo: int, checksum_len: int, header_len: int,
    rest: bytes,
) -> None:
    data = PREFIX.pack(magic, fmt, codec_id, algo, checksum_len, header_len) + rest
    with pytest.raises(IntegrityError):
        make_codec().decode_frame(data, "s", 1)


Mutation = tuple[str, int, int]


@BOUNDED
@given(
    st.integers(0, 2),
    st.lists(
        st.tuples(
            st.sampled_from(["xor", "delete", "insert", "truncate"]),
            st.integers(0, 10_000),
            st.integers(1, 255),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_random_mutations_are_an_integrity_error(index: int, mutations: list[Mutation]) -> None:
    original = small_frames()[index].frame
    data = bytearray(original)
    for kind, where, value in mutations:
        position = where % (len(data) + 1)
        if kind == "xor" and position < len(data):
            data[position] ^= value
        elif kind == "delete" and position < len(data):
            del data[position]
        elif kind == "insert":
            data.insert(position, value)
        elif kind == "truncate":
            del data[position:]
    if bytes(data) == original:
        return  # the mutations cancelled out
    with pytest.raises(IntegrityError):
        make_codec().decode_frame(bytes(data), "s", 1)


@BOUNDED
@given(st.integers(0, 2), st.integers(0, 1 << 20), st.binary(max_size=200), st.booleans())
def test_consistent_forgeries_decode_or_raise_integrity_error(
    codec_id: int, size: int, payload: bytes, typed: bool
) -> None:
    """A frame with a valid checksum but arbitrary content never raises anything else."""
    forged = forge(payload, header_bytes(size), codec_id=codec_id)
    try:
        make_codec().decode_frame(forged, "s", 1, Agent if typed else None)
    except (IntegrityError, SerializationError):
        pass


@BOUNDED
@given(
    msgpack_states(max_leaves=30, max_items=5, max_bytes=50, int_keys=False),
    st.sampled_from(list(CompressionType)),
    st.integers(0, 64),
)
def test_random_states_round_trip(state: Any, compression: CompressionType, threshold: int) -> None:
    codec = make_codec(compression, threshold=threshold)
    frame = build(codec, state)
    assert codec.decode_frame(frame.frame, "s", 1)[0] == state


# -- encoding errors and limits ------------------------------------------------------------


class Opaque:
    pass


@pytest.mark.parametrize(
    "state", [Opaque(), 2**70, -(2**70), {1j: 1}, {"k": object()}, [1, Opaque()], lambda: 1]
)
def test_unencodable_state_is_a_serialization_error(state: object) -> None:
    with pytest.raises(SerializationError):
        make_codec().encode_state(state)


def test_state_nested_too_deep_is_a_serialization_error() -> None:
    state: list[Any] = []
    for _ in range(100_000):
        state = [state]
    with pytest.raises(SerializationError):
        make_codec().encode_state(state)


def test_payload_over_the_maximum_is_refused() -> None:
    state = b"x" * 1000
    size = len(msgspec.msgpack.encode(state))
    assert make_codec(max_payload=size).encode_state(state) == msgspec.msgpack.encode(state)
    with pytest.raises(PayloadTooLargeError) as info:
        make_codec(max_payload=size - 1).encode_state(state)
    assert info.value.size == size
    assert info.value.limit == size - 1
    assert isinstance(info.value, ValueError)


# -- async paths: inline and worker thread ---------------------------------------------------


def counting_to_thread(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []
    real = anyio.to_thread.run_sync

    async def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", run_sync)
    return calls


@pytest.mark.parametrize("compression", list(CompressionType))
async def test_decode_in_a_thread_equals_inline(
    compression: CompressionType, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = build(make_codec(compression), COMPRESSIBLE)
    inline = make_codec(offload=1 << 30)
    threaded = make_codec(offload=0)
    calls = counting_to_thread(monkeypatch)
    expected = await inline.decode(StoredVersion(frame.frame), "s", 1)
    assert calls == []
    got = await threaded.decode(StoredVersion(frame.frame), "s", 1)
    assert len(calls) == 1
    assert got == expected
    assert got[0] == COMPRESSIBLE
    typed = build(make_codec(compression), Agent("n", 2))
    assert (await threaded.decode(StoredVersion(typed.frame), "s", 1, Agent))[0] == Agent("n", 2)


async def test_decode_in_a_thread_raises_the_same_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = build(make_codec(), COMPRESSIBLE)
    corrupt = frame.frame[:-1] + bytes([frame.frame[-1] ^ 1])
    calls = counting_to_thread(monkeypatch)
    with pytest.raises(IntegrityError):
        await make_codec(offload=0).decode(StoredVersion(corrupt), "s", 1)
    with pytest.raises(SerializationError):
        await make_codec(offload=0).decode(StoredVersion(frame.frame), "s", 1, Agent)
    assert len(calls) == 2


@pytest.mark.parametrize("compression", list(CompressionType))
async def test_encode_in_a_thread_equals_inline(
    compression: CompressionType, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = msgspec.msgpack.encode(COMPRESSIBLE)
    header = FrameHeader(1234, len(raw), 0, 0, ("t",))
    calls = counting_to_thread(monkeypatch)
    inline = await make_codec(compression, offload=1 << 30).encode(raw, header, "s")
    assert calls == []
    threaded = await make_codec(compression, offload=0).encode(raw, header, "s")
    assert len(calls) == 1
    assert threaded == inline
    assert threaded.info.header.size_bytes == len(msgspec.msgpack.encode(COMPRESSIBLE))


# -- reframe ---------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", list(CompressionType))
@pytest.mark.parametrize("offload", [0, 1 << 30])
async def test_reframe_keeps_the_payload_and_changes_the_header(
    compression: CompressionType, offload: int
) -> None:
    codec = make_codec(compression, offload=offload)
    original = build(codec, COMPRESSIBLE)
    seen: list[FrameHeader] = []

    def header_of(old: FrameHeader) -> FrameHeader:
        seen.append(old)
        return FrameHeader(old.updated_at_ms + 5000, old.size_bytes, 0, 3, ("new",))

    new = await codec.reframe(original.frame, header_of, "s", 3)
    assert seen == [original.info.header]
    assert split(new.frame)[3] == split(original.frame)[3]  # byte-identical payload
    assert new.info.compression is original.info.compression
    assert new.info.header == FrameHeader(HEADER.updated_at_ms + 5000, original.info.header.size_bytes,
                                          0, 3, ("new",))
    assert new.info.checksum != original.info.checksum
    assert new.info.stored_bytes == len(new.frame)
    state, parsed = codec.decode_frame(new.frame, "s", 4)
    assert state == COMPRESSIBLE
    assert parsed == new.info


async def test_reframe_verifies_the_source_first() -> None:
    codec = make_codec()
    original = build(codec, COMPRESSIBLE)
    corrupt = bytearray(original.frame)
    corrupt[-1] ^= 0x10
    with pytest.raises(IntegrityError) as info:
        await codec.reframe(bytes(corrupt), lambda old: old, "sid", 9)
    assert (info.value.state_id, info.value.version) == ("sid", 9)


def test_negative_header_fields_are_an_integrity_error() -> None:
    header = msgspec.msgpack.encode([1_700_000_000_000, 3, -5, 0, []])
    forged = forge(b"\x01\x02\x03", header, codec_id=0)
    with pytest.raises(IntegrityError):
        make_codec().parse_header(forged, "s", 1)
