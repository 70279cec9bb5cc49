"""Argument checks (no Redis): the validators, and the store refusing bad input before any I/O."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis.exceptions

from recostate import (
    DEFAULT,
    InvalidInputError,
    RecostateError,
    RedisStatePersistence,
    StoreUnavailableError,
)
from recostate._validation import (
    MAX_STATE_ID_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_TTL_SECONDS,
    check_keep_last,
    check_state_id,
    check_tag,
    check_tags,
    check_ttl,
    check_version,
    resolve_ttl,
)

# Nothing listens on port 1: any I/O would end in StoreUnavailableError.
UNREACHABLE = "redis://127.0.0.1:1/0"

NOT_INTS: list[object] = [True, False, 1.0, 1.5, "1", b"1", None, [1], object()]


def test_invalid_input_error_is_a_value_error() -> None:
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(InvalidInputError, RecostateError)
    assert not issubclass(InvalidInputError, StoreUnavailableError)


# -- state_id --------------------------------------------------------------------------------


@pytest.mark.parametrize("state_id", ["a", "x" * MAX_STATE_ID_LENGTH, "{a}", "a:b", " ", "🙂", "\ud800"])
def test_check_state_id_accepts_any_non_empty_str(state_id: str) -> None:
    assert check_state_id(state_id) is state_id


@pytest.mark.parametrize("state_id", [5, 5.0, b"abc", None, True, ["a"], object()])
def test_check_state_id_refuses_non_str(state_id: object) -> None:
    with pytest.raises(InvalidInputError, match="str"):
        check_state_id(state_id)


def test_check_state_id_refuses_empty_and_too_long() -> None:
    with pytest.raises(InvalidInputError):
        check_state_id("")
    with pytest.raises(InvalidInputError):
        check_state_id("x" * (MAX_STATE_ID_LENGTH + 1))
    with pytest.raises(InvalidInputError):
        check_state_id("🙂" * 10_000)


def test_state_id_limit_is_1024_characters_not_bytes() -> None:
    assert MAX_STATE_ID_LENGTH == 1024
    assert check_state_id("é" * 1024) == "é" * 1024


def test_messages_do_not_echo_long_ids() -> None:
    with pytest.raises(InvalidInputError) as info:
        check_state_id("secret" * 1000)
    assert "secret" not in str(info.value)


# -- versions and keep_last ------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 42, 2**31])
def test_check_version_accepts_non_negative_ints(value: int) -> None:
    assert check_version(value) == value
    assert type(check_version(value)) is int
    assert check_keep_last(value) == value


@pytest.mark.parametrize("value", NOT_INTS)
def test_check_version_refuses_non_ints_and_bools(value: object) -> None:
    with pytest.raises(InvalidInputError):
        check_version(value)
    with pytest.raises(InvalidInputError):
        check_version(value, "expected_version")
    with pytest.raises(InvalidInputError):
        check_keep_last(value)


@pytest.mark.parametrize("value", [-1, -(2**64)])
def test_check_version_refuses_negative(value: int) -> None:
    with pytest.raises(InvalidInputError):
        check_version(value)
    with pytest.raises(InvalidInputError):
        check_keep_last(value)


def test_check_version_names_the_argument() -> None:
    with pytest.raises(InvalidInputError, match="expected_version"):
        check_version(-1, "expected_version")
    with pytest.raises(InvalidInputError, match="keep_last"):
        check_keep_last(-1)


def test_int_subclass_is_normalised() -> None:
    class MyInt(int):
        pass

    value = check_version(MyInt(3))
    assert value == 3 and type(value) is int


# -- tags ------------------------------------------------------------------------------------


def test_check_tag() -> None:
    assert check_tag("a") == "a"
    assert check_tag("x" * MAX_TAG_LENGTH) == "x" * MAX_TAG_LENGTH
    for bad in ["", "x" * (MAX_TAG_LENGTH + 1), 5, None, b"a", True, ["a"]]:
        with pytest.raises(InvalidInputError):
            check_tag(bad)


def test_check_tags_normal_forms() -> None:
    assert check_tags(None) == ()
    assert check_tags([]) == ()
    assert check_tags(["b", "a", "b"]) == ("b", "a")
    assert check_tags(("x",)) == ("x",)
    assert check_tags(tag for tag in ["g1", "g2"]) == ("g1", "g2")
    assert check_tags(["same"] * (MAX_TAGS * 2)) == ("same",)


@pytest.mark.parametrize("tags", ["abc", "a", b"abc", bytearray(b"ab"), 5, 1.5, True, object()])
def test_check_tags_refuses_a_plain_str_and_non_iterables(tags: object) -> None:
    with pytest.raises(InvalidInputError):
        check_tags(tags)


@pytest.mark.parametrize(
    "tags", [["", "a"], ["a", ""], ["a", 5], [None], [b"a"], ["x" * (MAX_TAG_LENGTH + 1)], [["a"]]]
)
def test_check_tags_refuses_bad_members(tags: list[Any]) -> None:
    with pytest.raises(InvalidInputError):
        check_tags(tags)


def test_check_tags_limits_the_count() -> None:
    assert len(check_tags([f"t{i}" for i in range(MAX_TAGS)])) == MAX_TAGS
    with pytest.raises(InvalidInputError):
        check_tags([f"t{i}" for i in range(MAX_TAGS + 1)])


def test_check_tags_stops_on_an_endless_iterable() -> None:
    def endless() -> Iterator[str]:
        n = 0
        while True:
            n += 1
            yield f"t{n}"

    with pytest.raises(InvalidInputError):
        check_tags(endless())


# -- ttl -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [None, 1, 3600, MAX_TTL_SECONDS])
def test_check_ttl_accepts(ttl: int | None) -> None:
    assert check_ttl(ttl) == ttl


@pytest.mark.parametrize(
    "ttl", [0, -1, -3600, True, False, 1.0, 0.5, "10", b"10", MAX_TTL_SECONDS + 1, 2**64, [10]]
)
def test_check_ttl_refuses(ttl: object) -> None:
    with pytest.raises(InvalidInputError):
        check_ttl(ttl)


def test_resolve_ttl() -> None:
    assert resolve_ttl(DEFAULT, 60) == 60
    assert resolve_ttl(DEFAULT, None) is None
    assert resolve_ttl(None, 60) is None
    assert resolve_ttl(5, 60) == 5
    with pytest.raises(InvalidInputError):
        resolve_ttl(0, 60)
    with pytest.raises(InvalidInputError):
        resolve_ttl(True, None)


# -- the store checks before any I/O ---------------------------------------------------------


@pytest.fixture
async def offline() -> AsyncIterator[RedisStatePersistence]:
    """A store pointed at a port where nothing listens, with no retries."""
    store = RedisStatePersistence(UNREACHABLE, retries=0)
    yield store
    await store.aclose()


# The store is typed Any here: these calls pass what the signatures refuse, on purpose.
Call = Callable[[Any], Awaitable[Any]]


async def _collect(store: RedisStatePersistence, tag: Any) -> list[str]:
    return [state_id async for state_id in store.iter_states(tag=tag)]


def _bad_id_calls(index: int, bad: object) -> dict[str, Call]:
    calls: dict[str, Call] = {
        "save": lambda s: s.save(bad, {"a": 1}),
        "save_with_metadata": lambda s: s.save_with_metadata({"a": 1}, bad),
        "load": lambda s: s.load(bad),
        "load_with_metadata": lambda s: s.load_with_metadata(bad),
        "get_metadata": lambda s: s.get_metadata(bad),
        "list_versions": lambda s: s.list_versions(bad),
        "delete_version": lambda s: s.delete_version(bad, 1),
        "rollback": lambda s: s.rollback(bad, 1),
        "delete": lambda s: s.delete(bad),
        "exists": lambda s: s.exists(bad),
        "touch": lambda s: s.touch(bad),
        "prune": lambda s: s.prune(bad, 1),
    }
    return {f"{name}-id{index}": call for name, call in calls.items()}


BAD_ID: list[object] = [5, "", "x" * 1025, None, b"id", True]

BAD_CALLS: dict[str, Call] = {}
for _index, _bad in enumerate(BAD_ID):
    BAD_CALLS.update(_bad_id_calls(_index, _bad))

BAD_CALLS.update(
    {
        "save-version-True": lambda s: s.save("x", 1, version=True),
        "save-version-negative": lambda s: s.save("x", 1, version=-1),
        "save-version-float": lambda s: s.save("x", 1, version=2.0),
        "save-version-str": lambda s: s.save("x", 1, version="2"),
        "save-expected-str": lambda s: s.save("x", 1, expected_version="1"),
        "save-expected-negative": lambda s: s.save("x", 1, expected_version=-1),
        "save-expected-False": lambda s: s.save("x", 1, expected_version=False),
        "save-tags-empty-member": lambda s: s.save("x", 1, tags=["", "a"]),
        "save-tags-str": lambda s: s.save("x", 1, tags="abc"),
        "save-tags-int-member": lambda s: s.save("x", 1, tags=["a", 1]),
        "save-tags-too-many": lambda s: s.save("x", 1, tags=[str(i) for i in range(MAX_TAGS + 1)]),
        "save-tags-too-long": lambda s: s.save("x", 1, tags=["t" * (MAX_TAG_LENGTH + 1)]),
        "save-ttl-0": lambda s: s.save("x", 1, ttl=0),
        "save-ttl-negative": lambda s: s.save("x", 1, ttl=-5),
        "save-ttl-True": lambda s: s.save("x", 1, ttl=True),
        "save-ttl-float": lambda s: s.save("x", 1, ttl=1.5),
        "save-ttl-too-large": lambda s: s.save("x", 1, ttl=MAX_TTL_SECONDS + 1),
        "save_with_metadata-version": lambda s: s.save_with_metadata(1, "x", version=-1),
        "save_with_metadata-tags": lambda s: s.save_with_metadata(1, "x", tags="abc"),
        "save_with_metadata-ttl": lambda s: s.save_with_metadata(1, "x", ttl=0),
        "save_with_metadata-expected": lambda s: s.save_with_metadata(1, "x", expected_version=True),
        "load-version-float": lambda s: s.load("x", version=1.5),
        "load-version-negative": lambda s: s.load("x", -1),
        "load-version-True": lambda s: s.load("x", True),
        "load_with_metadata-version": lambda s: s.load_with_metadata("x", "1"),
        "get_metadata-version": lambda s: s.get_metadata("x", -3),
        "delete_version-None": lambda s: s.delete_version("x", None),
        "delete_version-negative": lambda s: s.delete_version("x", -1),
        "delete_version-True": lambda s: s.delete_version("x", True),
        "rollback-None": lambda s: s.rollback("x", None),
        "rollback-float": lambda s: s.rollback("x", 1.0),
        "prune-negative": lambda s: s.prune("x", keep_last=-1),
        "prune-None": lambda s: s.prune("x", None),
        "prune-True": lambda s: s.prune("x", True),
        "touch-negative": lambda s: s.touch("x", ttl=-5),
        "touch-0": lambda s: s.touch("x", 0),
        "touch-True": lambda s: s.touch("x", ttl=True),
        "touch-str": lambda s: s.touch("x", ttl="10"),
        "list_states-empty-tag": lambda s: s.list_states(tag=""),
        "list_states-int-tag": lambda s: s.list_states(tag=5),
        "list_states-long-tag": lambda s: s.list_states(tag="t" * (MAX_TAG_LENGTH + 1)),
        "iter_states-empty-tag": lambda s: _collect(s, ""),
        "iter_states-list-tag": lambda s: _collect(s, ["a"]),
    }
)


@pytest.mark.parametrize("call", list(BAD_CALLS.values()), ids=list(BAD_CALLS))
async def test_bad_arguments_raise_before_any_io(offline: RedisStatePersistence, call: Call) -> None:
    with pytest.raises(InvalidInputError):
        await call(offline)
    assert offline._executor.pool()["kind"] == "unopened"  # no client was even created


async def test_iter_states_refuses_a_bad_tag_when_called(offline: RedisStatePersistence) -> None:
    with pytest.raises(InvalidInputError):
        offline.iter_states(tag="")


async def test_good_arguments_do_reach_the_network(offline: RedisStatePersistence) -> None:
    """The control: the same store with valid arguments fails on I/O, so the checks above
    really ran before it."""
    with pytest.raises(StoreUnavailableError) as info:
        await offline.save("x", {"a": 1}, tags=["a"], ttl=10, version=3)
    assert isinstance(info.value.__cause__, (redis.exceptions.ConnectionError, OSError))
    with pytest.raises(StoreUnavailableError):
        await offline.load("x", 1)
    with pytest.raises(StoreUnavailableError):
        await offline.list_states(tag="a")


async def test_serialization_error_comes_before_io(offline: RedisStatePersistence) -> None:
    from recostate import PayloadTooLargeError, SerializationError

    with pytest.raises(SerializationError):
        await offline.save("x", object())
    small = RedisStatePersistence(UNREACHABLE, retries=0, max_payload_bytes=100)
    try:
        with pytest.raises(PayloadTooLargeError):
            await small.save("x", "y" * 1000)
    finally:
        await small.aclose()


def test_version_numbers_beyond_lua_precision_are_refused() -> None:
    from recostate._validation import MAX_VERSION, check_version

    assert check_version(MAX_VERSION) == MAX_VERSION
    with pytest.raises(InvalidInputError):
        check_version(MAX_VERSION + 1)
    with pytest.raises(InvalidInputError):
        check_version(2**60, "expected_version")


def test_tags_with_lone_surrogates_are_refused() -> None:
    from recostate._validation import check_tag, check_tags

    with pytest.raises(InvalidInputError):
        check_tag("a\ud800")
    with pytest.raises(InvalidInputError):
        check_tags(["ok", "b\udfff"])
    assert check_tag("emoji 🧠") == "emoji 🧠"
