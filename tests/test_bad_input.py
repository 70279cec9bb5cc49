"""Bad input, property-based, against a real server: refused before any I/O, nothing written;
corrupted stored bytes: ``IntegrityError`` only.

``tests/test_validation.py`` pins each refusal one by one against a port where
nothing listens; ``tests/test_codec.py`` mutates frames in memory. Here
hypothesis draws the bad arguments and the corruptions, and a real server
tells what reached it: the server's own command counter
(``total_commands_processed``) must move by exactly the one ``INFO`` that reads
it, so a refused call sent nothing at all, and no key appears.
"""

from __future__ import annotations

import asyncio
import math
import os
import struct
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recostate import (
    ConfigurationError,
    IntegrityError,
    InvalidInputError,
    PayloadTooLargeError,
    RecostateError,
    RedisStatePersistence,
    SerializationError,
    StateMetadata,
)
from recostate._server import EmbeddedRedis, find_redis_server
from recostate._validation import MAX_STATE_ID_LENGTH, MAX_TAG_LENGTH, MAX_TAGS, MAX_TTL_SECONDS
from tests.layout import get_version, set_version, versions_key

pytestmark = pytest.mark.integration

PREFIX = "badinput"
HANG = 10.0
SIGNING_KEY = b"k" * 32

FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server binary found")
    with EmbeddedRedis(binary) as embedded:
        yield embedded


@pytest.fixture(scope="module")
def admin(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis(host=server.host, port=server.port)
    yield client
    client.close()


def commands_processed(admin: redis.Redis) -> int:
    return int(admin.info("stats")["total_commands_processed"])


def keys_under_prefix(admin: redis.Redis) -> list[bytes]:
    return sorted(admin.scan_iter(match=f"{PREFIX}*", count=1000))


# -- strategies of bad values ------------------------------------------------------------------

not_str = st.one_of(
    st.integers(),
    st.floats(allow_nan=True),
    st.binary(max_size=8),
    st.none(),
    st.booleans(),
    st.lists(st.text(max_size=3), max_size=2),
    st.tuples(st.text(max_size=3)),
)
bad_state_id = st.one_of(
    not_str.filter(lambda v: v is not None),
    st.just(""),
    st.text(min_size=MAX_STATE_ID_LENGTH + 1, max_size=MAX_STATE_ID_LENGTH + 40),
    st.none(),
)
not_int = st.one_of(
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=1),
    st.decimals(allow_nan=False, places=1),
)
negative = st.integers(max_value=-1)
huge = st.integers(min_value=2**53, max_value=2**70)
bad_version = st.one_of(not_int, negative, huge)  # None means "head": valid here
bad_required_version = st.one_of(bad_version, st.none())
bad_ttl = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=MAX_TTL_SECONDS + 1, max_value=2**70),
    not_int,
)
bad_tag = st.one_of(
    st.just(""),
    st.text(min_size=MAX_TAG_LENGTH + 1, max_size=MAX_TAG_LENGTH + 10),
    st.integers(),
    st.binary(min_size=1, max_size=4),
    st.none(),
    st.booleans(),
)
bad_tags = st.one_of(
    st.text(min_size=1, max_size=5),  # a lone str is refused rather than split
    st.binary(min_size=1, max_size=5),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.lists(st.text(min_size=1, max_size=3), max_size=2).flatmap(
        lambda good: st.tuples(bad_tag, st.integers(0, len(good))).map(
            lambda pair: [*good[: pair[1]], pair[0], *good[pair[1] :]]
        )
    ),
    st.just([f"t{i}" for i in range(MAX_TAGS + 1)]),
)
bad_keep_last = st.one_of(not_int, negative, st.none())
bad_list_tag = st.one_of(bad_tag.filter(lambda v: v is not None), st.lists(st.text(), max_size=1))

Call = Callable[[RedisStatePersistence], Awaitable[Any]]


def _calls() -> st.SearchStrategy[tuple[str, Call]]:
    """One public call with exactly one bad argument, the others valid."""

    def named(name: str, strategy: st.SearchStrategy[Any], make: Callable[[Any], Call]) -> Any:
        return strategy.map(lambda bad: (f"{name}({bad!r:.40})", make(bad)))

    def collect(tag: Any) -> Call:
        async def run(s: RedisStatePersistence) -> list[str]:
            return [x async for x in s.iter_states(tag=tag)]

        return run

    return st.one_of(
        named("save.state_id", bad_state_id, lambda b: lambda s: s.save(b, {"a": 1})),
        named("save.version", bad_version, lambda b: lambda s: s.save("x", 1, version=b)),
        named("save.expected", bad_version, lambda b: lambda s: s.save("x", 1, expected_version=b)),
        named("save.tags", bad_tags, lambda b: lambda s: s.save("x", 1, tags=b)),
        named("save.ttl", bad_ttl, lambda b: lambda s: s.save("x", 1, ttl=b)),
        named("swm.state_id", bad_state_id, lambda b: lambda s: s.save_with_metadata(1, b)),
        named("swm.tags", bad_tags, lambda b: lambda s: s.save_with_metadata(1, "x", tags=b)),
        named("load.state_id", bad_state_id, lambda b: lambda s: s.load(b)),
        named("load.version", bad_version, lambda b: lambda s: s.load("x", b)),
        named("lwm.version", bad_version, lambda b: lambda s: s.load_with_metadata("x", b)),
        named("get_metadata", bad_version, lambda b: lambda s: s.get_metadata("x", b)),
        named("list_versions", bad_state_id, lambda b: lambda s: s.list_versions(b)),
        named("exists", bad_state_id, lambda b: lambda s: s.exists(b)),
        named("delete", bad_state_id, lambda b: lambda s: s.delete(b)),
        named("delete_version", bad_required_version, lambda b: lambda s: s.delete_version("x", b)),
        named("rollback", bad_required_version, lambda b: lambda s: s.rollback("x", b)),
        named("touch.ttl", bad_ttl, lambda b: lambda s: s.touch("x", b)),
        named("touch.state_id", bad_state_id, lambda b: lambda s: s.touch(b)),
        named("prune", bad_keep_last, lambda b: lambda s: s.prune("x", b)),
        named("list_states", bad_list_tag, lambda b: lambda s: s.list_states(tag=b)),
        named("iter_states", bad_list_tag, collect),
    )


async def _refused(url: str, call: Call) -> BaseException | None:
    store = RedisStatePersistence(url, key_prefix=PREFIX, retries=0)
    try:
        await asyncio.wait_for(call(store), HANG)
    except RecostateError as exc:
        return exc
    finally:
        await store.aclose()
    return None


@FAST
@given(case=_calls())
def test_every_bad_call_argument_is_refused_before_any_io(
    server: EmbeddedRedis, admin: redis.Redis, case: tuple[str, Call]
) -> None:
    name, call = case
    before = commands_processed(admin)
    error = asyncio.run(_refused(server.url, call))
    assert isinstance(error, InvalidInputError), f"{name}: {error!r}"
    assert commands_processed(admin) == before + 1, f"{name} reached the server"
    assert keys_under_prefix(admin) == []


# -- constructor options ------------------------------------------------------------------------

non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
bad_options: dict[str, st.SearchStrategy[Any]] = {
    "redis_url": st.one_of(
        st.text(max_size=20).filter(lambda u: "://" not in u),
        st.sampled_from(["http://h:1", "redis://", "redis://h:notaport", "unix://", "mongodb://h"]),
        st.integers(),
        st.none(),
        st.binary(max_size=5),
    ),
    "compression_type": st.one_of(
        st.text(max_size=6).filter(lambda t: t.lower() not in ("lz4", "zlib", "none")),
        st.integers(),
        st.none(),
    ),
    "enable_versioning": st.one_of(st.integers(), st.text(max_size=3), st.none()),
    "max_versions": st.one_of(st.integers(max_value=0), not_int, st.none()),
    "default_ttl": st.one_of(st.integers(max_value=0), not_int),
    "redis_options": st.one_of(
        st.integers(),
        st.text(max_size=3),
        st.lists(st.integers(), max_size=2),
        st.just({"decode_responses": True}),
        st.just({"no_such_option": 1}),
        st.fixed_dictionaries({"max_connections": st.one_of(st.integers(max_value=0), not_int)}),
        st.fixed_dictionaries(
            {
                "socket_timeout": st.one_of(
                    st.integers(max_value=0), st.text(max_size=2), st.booleans(), non_finite
                )
            }
        ),
        st.fixed_dictionaries({"pool_timeout": st.one_of(st.floats(max_value=0), non_finite)}),
    ),
    "key_prefix": st.one_of(
        st.just(""), st.text(max_size=5).map(lambda t: t + "{"), st.integers(), st.none()
    ),
    "cluster": st.one_of(st.integers(), st.text(max_size=2), st.none()),
    "compression_threshold": st.one_of(negative, not_int),
    "offload_threshold": st.one_of(negative, not_int),
    "max_payload_bytes": st.one_of(
        st.integers(max_value=0), st.integers(min_value=600 * 2**20, max_value=2**40), not_int
    ),
    "retries": st.one_of(negative, not_int),
    "retry_backoff": st.one_of(st.floats(max_value=-0.001), st.text(max_size=2), non_finite),
    "signing_key": st.one_of(
        st.binary(max_size=15), st.text(min_size=16, max_size=20), st.integers(), st.just([])
    ),
    "wait_for_replicas": st.one_of(negative, not_int),
    "wait_timeout": st.one_of(st.floats(max_value=0.0009), non_finite, st.text(max_size=2)),
}


@FAST
@given(
    st.sampled_from(sorted(bad_options)).flatmap(lambda n: st.tuples(st.just(n), bad_options[n]))
)
def test_every_bad_constructor_option_is_a_configuration_error_without_io(
    server: EmbeddedRedis, admin: redis.Redis, option: tuple[str, Any]
) -> None:
    name, value = option
    before = commands_processed(admin)
    kwargs: dict[str, Any] = {"key_prefix": PREFIX, name: value}
    url = kwargs.pop("redis_url", server.url)
    with pytest.raises(ConfigurationError):
        RedisStatePersistence(url, **kwargs)
    assert commands_processed(admin) == before + 1


# -- unencodable and over-size states -----------------------------------------------------------

unencodable = st.one_of(
    st.builds(object),
    st.just({1, 2}).map(lambda s: {"a": [s, lambda: None]}),
    st.just(float).map(lambda f: [f]),
    st.integers(min_value=2**64, max_value=2**80),
    st.just(Ellipsis),
    st.just(complex(1, 2)),
)


async def _save_refused(url: str, state: Any, *, limit: int) -> BaseException | None:
    store = RedisStatePersistence(url, key_prefix=PREFIX, retries=0, max_payload_bytes=limit)
    try:
        await asyncio.wait_for(store.save("x", state), HANG)
    except RecostateError as exc:
        return exc
    finally:
        await store.aclose()
    return None


@FAST
@given(state=unencodable)
def test_unencodable_states_write_nothing(
    server: EmbeddedRedis, admin: redis.Redis, state: Any
) -> None:
    before = commands_processed(admin)
    error = asyncio.run(_save_refused(server.url, state, limit=2**20))
    assert isinstance(error, SerializationError), repr(error)
    assert commands_processed(admin) == before + 1
    assert keys_under_prefix(admin) == []


@FAST
@given(size=st.integers(min_value=1, max_value=4096), extra=st.integers(min_value=1, max_value=64))
def test_over_size_states_write_nothing(
    server: EmbeddedRedis, admin: redis.Redis, size: int, extra: int
) -> None:
    state = os.urandom(size + extra)  # msgpack adds a small header: surely over ``size``
    before = commands_processed(admin)
    error = asyncio.run(_save_refused(server.url, state, limit=size))
    assert isinstance(error, PayloadTooLargeError), repr(error)
    assert error.limit == size and error.size > size
    assert commands_processed(admin) == before + 1
    assert keys_under_prefix(admin) == []


# -- corrupted stored bytes ---------------------------------------------------------------------

STATES: dict[str, Any] = {
    "small": {"a": 1, "b": [1, 2, 3]},
    "lz4": {"text": "abc" * 3000},
    "zlib": {"rows": list(range(2000))},
}


def _mutations(frame_len: int) -> st.SearchStrategy[Callable[[bytes, bytes], bytes]]:
    """Ways to damage a frame; the second argument is another state's frame."""

    def flip(index: int, bit: int) -> Callable[[bytes, bytes], bytes]:
        def apply(frame: bytes, _: bytes) -> bytes:
            out = bytearray(frame)
            out[index % len(out)] ^= 1 << bit
            return bytes(out)

        return apply

    def truncate(length: int) -> Callable[[bytes, bytes], bytes]:
        return lambda frame, _: frame[: length % len(frame)]

    def set_byte(index: int, value: int) -> Callable[[bytes, bytes], bytes]:
        def apply(frame: bytes, _: bytes) -> bytes:
            out = bytearray(frame)
            out[index] = value
            return bytes(out)

        return apply

    def header_length(value: int) -> Callable[[bytes, bytes], bytes]:
        return lambda frame, _: frame[:6] + struct.pack(">I", value) + frame[10:]

    def swap_payload(cut: int) -> Callable[[bytes, bytes], bytes]:
        return lambda frame, other: frame[: cut % len(frame)] + other[cut % len(other) :]

    def random_bytes(data: bytes) -> Callable[[bytes, bytes], bytes]:
        return lambda frame, _: data

    def append(data: bytes) -> Callable[[bytes, bytes], bytes]:
        return lambda frame, _: frame + data

    return st.one_of(
        st.builds(flip, st.integers(0, frame_len * 2), st.integers(0, 7)),
        st.builds(truncate, st.integers(0, frame_len * 2)),
        st.builds(set_byte, st.sampled_from([2, 3, 4, 5]), st.integers(0, 255)),
        st.builds(header_length, st.integers(0, 2**32 - 1)),
        st.builds(swap_payload, st.integers(0, frame_len)),
        st.builds(random_bytes, st.binary(max_size=200)),
        st.builds(append, st.binary(min_size=1, max_size=16)),
    )


async def _read_everything(url: str, signing: bool, state_id: str) -> list[tuple[str, Any]]:
    """Run every read (and rollback) of a damaged head; return what each did."""
    store = RedisStatePersistence(
        url,
        key_prefix=PREFIX,
        retries=0,
        compression_type="zlib" if state_id == "zlib" else "lz4",
        signing_key=SIGNING_KEY if signing else None,
    )
    outcomes: list[tuple[str, Any]] = []
    try:
        for name, call in (
            ("load", lambda: store.load(state_id)),
            ("load_with_metadata", lambda: store.load_with_metadata(state_id, 1)),
            ("rollback", lambda: store.rollback(state_id, 1)),
            ("get_metadata", lambda: store.get_metadata(state_id)),
            ("list_versions", lambda: store.list_versions(state_id)),
        ):
            try:
                outcomes.append((name, await asyncio.wait_for(call(), HANG)))
            except IntegrityError as exc:
                outcomes.append((name, exc))
    finally:
        await store.aclose()
    return outcomes


class Frames(dict[tuple[bool, str], bytes]):
    """The genuine frames, with a short repr for hypothesis's reports."""

    def __repr__(self) -> str:
        return f"<{len(self)} genuine frames>"


@pytest.fixture(scope="module")
def frames(server: EmbeddedRedis, admin: redis.Redis) -> Frames:
    """The genuine frame of each sample state, unsigned and signed."""

    async def write() -> None:
        for signing in (False, True):
            for state_id, state in STATES.items():
                store = RedisStatePersistence(
                    server.url,
                    key_prefix=f"{PREFIX}-src-{int(signing)}",
                    compression_type="zlib" if state_id == "zlib" else "lz4",
                    signing_key=SIGNING_KEY if signing else None,
                )
                async with store:
                    await store.save(state_id, state)

    asyncio.run(write())
    found = Frames()
    for signing in (False, True):
        for state_id in STATES:
            found[(signing, state_id)] = get_version(admin, f"{PREFIX}-src-{int(signing)}", state_id, 1)
    return found


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    signing=st.booleans(),
    state_id=st.sampled_from(sorted(STATES)),
    other_id=st.sampled_from(sorted(STATES)),
    data=st.data(),
)
def test_corrupted_stored_bytes_are_integrity_errors_only(
    server: EmbeddedRedis,
    admin: redis.Redis,
    frames: Frames,
    signing: bool,
    state_id: str,
    other_id: str,
    data: st.DataObject,
) -> None:
    genuine = frames[(signing, state_id)]
    other = frames[(signing, other_id)]
    damage = data.draw(_mutations(len(genuine)))
    damaged = damage(genuine, other)
    if damaged == genuine:
        return
    # The state as a save leaves it, then the head's frame replaced by the damaged bytes.
    for key in keys_under_prefix(admin):
        admin.delete(key)
    store_setup = RedisStatePersistence(
        server.url, key_prefix=PREFIX, signing_key=SIGNING_KEY if signing else None
    )

    async def setup() -> None:
        async with store_setup:
            await store_setup.save(state_id, {"placeholder": True})

    asyncio.run(setup())
    set_version(admin, PREFIX, state_id, 1, damaged)

    outcomes = dict(asyncio.run(_read_everything(server.url, signing, state_id)))
    # Whatever was damaged, a load never returns a state: the checksum (or
    # signature) covers every byte. A whole frame of another state is the one
    # swap a CRC cannot see; a signature covers the id, so signed stores do.
    whole_swap = damaged == other
    for name in ("load", "load_with_metadata", "rollback"):
        if whole_swap and not signing:
            continue
        assert isinstance(outcomes[name], IntegrityError), f"{name} returned {outcomes[name]!r}"
    for outcome in outcomes.values():
        if isinstance(outcome, IntegrityError):
            assert outcome.state_id == state_id
    # Metadata reads parse the header only (no payload read): they either report
    # the damage or return metadata; never another exception.
    assert isinstance(outcomes["get_metadata"], (IntegrityError, StateMetadata))
    assert isinstance(outcomes["list_versions"], (IntegrityError, list))
    # Nothing was written by the failed rollback.
    if isinstance(outcomes["rollback"], IntegrityError):
        assert admin.hlen(versions_key(PREFIX, state_id)) == 1
