"""Large states: decoded in steps off the loop's way, an unchanged state saved without cutting it again."""

from __future__ import annotations

import datetime
from collections.abc import Generator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recostate import IntegrityError, RedisStatePersistence
from recostate._codec import frame as frames
from recostate._codec import policy
from recostate._codec.reading import DECODE_IN_STEPS_FROM
from recostate._codec.states import DECODE_STEP, StateCodec, UndecodableState
from recostate._storage.scripts import assemble

from .conftest import MakeStore
from .layout import aget_version, aset_version
from .strategies import msgpack_states

BOUNDED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _run(steps: Generator[None, None, Any]) -> tuple[Any, int]:
    pauses = 0
    try:
        while True:
            next(steps)
            pauses += 1
    except StopIteration as done:
        return done.value, pauses


def _big_state(messages: int = 8000) -> dict[Any, Any]:
    return {
        "session": "s-1",
        "step": 7,
        "messages": [
            {"role": "tool" if i % 3 else "assistant", "content": f"message {i} " + "word " * 40, "n": i}
            for i in range(messages)
        ],
        7: [[i, str(i)] for i in range(2000)],
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        "blob": b"\x00\x01" * 150_000,
        "text": "line\n" * 80_000,
    }


def test_decoding_in_steps_gives_what_one_call_gives_and_pauses_between_steps() -> None:
    codec = StateCodec(1 << 30)
    state = _big_state()
    raw = msgspec.msgpack.encode(state)
    assert len(raw) >= DECODE_IN_STEPS_FROM  # what the store decodes in steps
    value, pauses = _run(codec.decode_steps(raw))
    assert value == codec.decode(raw) == state
    # About one pause per step's worth of bytes: the loop gets its turns.
    assert pauses >= len(raw) // DECODE_STEP - 2


@BOUNDED
@given(
    msgpack_states(max_leaves=40),
    st.integers(min_value=0, max_value=3),
)
def test_any_state_decodes_in_steps_as_in_one_call(state: Any, repeat: int) -> None:
    codec = StateCodec(1 << 30)
    # Padded past a step, so the containers are opened.
    padded = {"pad": "x" * DECODE_STEP, "state": [state] * (repeat + 1), "tail": [state, "y" * DECODE_STEP]}
    raw = msgspec.msgpack.encode(padded)
    value, _ = _run(codec.decode_steps(raw))
    assert value == codec.decode(raw)


@pytest.mark.parametrize("cut", [1, DECODE_STEP + 3, -1])
def test_damaged_bytes_do_not_decode_in_steps(cut: int) -> None:
    codec = StateCodec(1 << 30)
    raw = msgspec.msgpack.encode({"a": ["x" * 1000] * 1000, "b": list(range(1000))})
    with pytest.raises(UndecodableState):
        _run(codec.decode_steps(raw[:cut]))
    with pytest.raises(UndecodableState):
        _run(codec.decode_steps(raw + b"\xc1"))


def test_a_script_carries_the_helpers_it_reaches_and_no_other() -> None:
    library = (
        "local UNUSED = 1\n"
        "local SIZE = 4\n"
        "local A, B = KEYS[1], KEYS[2]\n"
        "-- says what first does\n"
        "local function first(x)\n  return second(x) + SIZE\nend\n"
        "local function second(x)\n  return x\nend\n"
        "local function lonely()\n  return UNUSED\nend\n"
    )
    source = assemble(library, "return first(1) -- lonely() is only named here\n")
    assert "local function first" in source and "local function second" in source
    assert "local SIZE" in source and "-- says what first does" in source
    assert "local A, B" in source  # bindings of several names always stay
    assert "lonely" not in source.split("return first")[0]
    assert "UNUSED" not in source


async def test_a_large_state_loads_whole_fresh_warm_and_typed(make_store: MakeStore) -> None:
    state = _big_state()
    writer: RedisStatePersistence = make_store(default_ttl=3600)
    meta = await writer.save("big", state)
    assert await writer.load("big") == state  # warm: the client holds every piece
    fresh = make_store()
    assert await fresh.load("big") == state  # fresh: every piece read
    typed = await fresh.load_with_metadata("big", type=dict[Any, Any])
    assert typed is not None and typed[0] == state and typed[1].version == meta.version
    whole = make_store(chunk_threshold=None)
    await whole.save("whole", state)
    assert await make_store().load("whole") == state


async def test_saving_an_unchanged_state_again_does_not_cut_it_again(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _big_state()
    store: RedisStatePersistence = make_store()
    await store.save("same", state)
    sent = (await store.get_stats())["store"]["bytes_stored"]

    def no_cut(*args: Any) -> Any:
        raise AssertionError("an unchanged state was cut again")

    monkeypatch.setattr(policy, "plan", no_cut)
    second = await store.save("same", state)
    assert second.version == 2
    # Only the new version's manifest went out: every piece was there.
    assert (await store.get_stats())["store"]["bytes_stored"] - sent < 8192
    reader: RedisStatePersistence = make_store()
    assert await reader.load("same") == state
    third = await reader.save("same", state)  # what a load showed stands for a cut too
    assert third.version == 3
    monkeypatch.undo()
    changed = {**state, "step": 8}
    await store.save("same", changed)
    assert await reader.load("same") == changed


async def test_a_large_state_that_does_not_decode_is_an_integrity_error(
    make_store: MakeStore, raw_redis: Any, key_prefix: str
) -> None:
    store: RedisStatePersistence = make_store(chunk_threshold=None)
    state = {"items": ["x" * 100 + str(i) for i in range(30_000)]}
    await store.save("whole", state)
    parsed = frames.parse(await aget_version(raw_redis, key_prefix, "whole", 1))
    # Its checksum holds, its size is right, but its last byte is no msgpack:
    # only decoding (in steps, for a state this large) can tell.
    raw = msgspec.msgpack.encode(state)
    bad = raw[:-1] + b"\xc1"
    await aset_version(
        raw_redis, key_prefix, "whole", 1, frames.pack(frames.KIND_VERSION, 0, bytes(parsed.header), bad)
    )
    with pytest.raises(IntegrityError, match="does not decode"):
        await make_store().load("whole")


async def test_a_client_new_to_a_state_sends_only_the_pieces_the_server_lacks(
    make_store: MakeStore,
) -> None:
    state = _big_state()
    first: RedisStatePersistence = make_store()
    await first.save("shared", state)
    whole = (await first.get_stats())["store"]["bytes_stored"]
    grown = {**state, "messages": [*state["messages"], {"role": "user", "content": "one more"}]}
    newcomer: RedisStatePersistence = make_store()
    meta = await newcomer.save("shared", grown)
    sent = (await newcomer.get_stats())["store"]["bytes_stored"]
    # It asked which pieces the state holds: far less than the whole state went out.
    assert meta.version == 2 and sent < whole / 4
    assert await make_store().load("shared") == grown
    # A state it holds nothing of: every piece goes, once.
    fresh_meta = await newcomer.save("other", state)
    assert fresh_meta.version == 1
    assert await first.load("other") == state
