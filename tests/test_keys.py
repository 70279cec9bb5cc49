"""The key layout alone (no Redis): hash slots, disjointness, prefix, glob escaping.

The keys of 0.1's layout (``LegacyKeys``) are checked beside the current ones:
an upgraded state must never have a key of one layout collide with the other.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from recostate._storage.keys import (
    HASH_TAG_LENGTH,
    KeySpace,
    LegacyKeys,
    StateKeys,
    encode_id,
    glob_escape,
)

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any Python str: braces, colons, glob characters, emoji, lone surrogates.
ANY_CHAR = st.characters(exclude_categories=())
TRICKY = st.sampled_from(["{", "}", ":", "*", "?", "[", "]", "\\", " ", "🙂", "\ud800", "\udfff",
                          "v1", "s:", "i:", "w:", "t:", "\x00", "é"])
IDS = st.lists(ANY_CHAR | TRICKY, min_size=1, max_size=30).map("".join)
TAGS = st.lists(ANY_CHAR | TRICKY, min_size=1, max_size=20).map("".join)
PREFIXES = st.text(
    st.characters(codec="utf-8", exclude_characters="{}") | st.sampled_from("*?[]\\:"),
    min_size=1,
    max_size=12,
)
SAMPLE_IDS = ["a", "agent-7", "{tag}", "}{", "a:b:c", "s:x", "v1:x", "🙂 emoji", "\ud800lone", "*?[]\\"]


def crc16_xmodem(data: bytes) -> int:
    """CRC-16/XMODEM, the checksum Redis Cluster hashes keys with."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: bytes) -> int:
    """The Redis Cluster slot of ``key``, honouring the first ``{...}`` hash tag."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end != -1 and end != start + 1:
            key = key[start + 1 : end]
    return crc16_xmodem(key) % 16384


def hash_tag(key: bytes) -> bytes:
    start = key.find(b"{")
    end = key.find(b"}", start + 1)
    assert start != -1 and end > start + 1
    return key[start + 1 : end]


def all_keys(keys: StateKeys, versions: range = range(1, 13)) -> list[bytes]:
    """Every key of a state, and every key 0.1's layout gave it (for these versions)."""
    legacy = LegacyKeys(keys.state.split(b":{", 1)[0], keys.state_id)
    return [*keys.all, legacy.index, legacy.writes, *(legacy.version(n) for n in versions)]


def redis_glob_match(pattern: bytes, key: bytes) -> bool:
    """Redis ``MATCH`` semantics for the subset recostate uses: ``\\x``, ``?``, ``*``."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i : i + 1]
        if char == b"\\":
            out.append(re.escape(pattern[i + 1 : i + 2]))
            i += 2
            continue
        if char == b"*":
            out.append(b".*")
        elif char == b"?":
            out.append(b".")
        elif char == b"[":
            raise AssertionError("unescaped '[' in a pattern recostate built")
        else:
            out.append(re.escape(char))
        i += 1
    return re.fullmatch(b"".join(out), key, re.DOTALL) is not None


def test_our_slot_function_agrees_with_redis_py() -> None:
    from redis.crc import key_slot as redis_key_slot

    for key in (b"", b"a", b"foo", b"{user1000}.following", b"a{}b", b"x{y}z{w}", b"123456789"):
        assert key_slot(key) == redis_key_slot(key)
    assert crc16_xmodem(b"123456789") == 0x31C3  # the published check value


@pytest.mark.parametrize("state_id", SAMPLE_IDS)
def test_all_keys_of_an_id_share_one_hash_tag_and_slot(state_id: str) -> None:
    keys = KeySpace("recostate").state(state_id)
    every = all_keys(keys)
    tags = {hash_tag(key) for key in every}
    assert len(tags) == 1
    assert len(tags.pop()) == HASH_TAG_LENGTH
    assert len({key_slot(key) for key in every}) == 1


@BOUNDED
@given(IDS, PREFIXES, st.integers(0, 2**63))
def test_all_keys_share_one_slot_for_any_id_and_prefix(state_id: str, prefix: str, version: int) -> None:
    keys = KeySpace(prefix).state(state_id)
    legacy = KeySpace(prefix).legacy(state_id)
    every = [*keys.all, legacy.version(version), legacy.version(1)]
    assert len({hash_tag(key) for key in every}) == 1
    assert len({key_slot(key) for key in every}) == 1


def test_hash_tag_is_the_documented_sha1_digest() -> None:
    space = KeySpace("recostate")
    for state_id in SAMPLE_IDS:
        expected = hashlib.sha1(state_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        for key in all_keys(space.state(state_id), range(1, 3)):
            assert hash_tag(key) == expected.encode("ascii")


@BOUNDED
@given(IDS)
def test_hash_tag_matches_lua_sha1hex_for_any_id(state_id: str) -> None:
    digest = hashlib.sha1(state_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    keys = KeySpace("p").state(state_id)
    assert keys.state == b"p:{" + digest.encode() + b"}:s:" + encode_id(state_id)
    head, middle = KeySpace("p").state_key_parts()
    # The tag listing script rebuilds the state key as head .. sha1hex(id):sub(1,16) .. middle .. id.
    assert head + digest.encode() + middle + encode_id(state_id) == keys.state


def test_documented_layout() -> None:
    keys = KeySpace("P").state("x")
    digest = hashlib.sha1(b"x").hexdigest()[:16].encode()
    base = b"P:{" + digest + b"}:"
    assert keys.state == base + b"s:x"
    assert keys.all == [base + kind + b":x" for kind in (b"s", b"l", b"v", b"c", b"r", b"d")]
    legacy = KeySpace("P").legacy("x")
    assert (legacy.index, legacy.writes, legacy.version(12)) == (
        base + b"i:x",
        base + b"w:x",
        base + b"v12:x",
    )
    assert KeySpace("P").tag("t1") == b"P:t:t1"


@BOUNDED
@given(IDS, IDS)
def test_distinct_ids_have_disjoint_keys(first: str, second: str) -> None:
    assume(first != second)
    space = KeySpace("recostate")
    a, b = all_keys(space.state(first)), all_keys(space.state(second))
    assert set(a).isdisjoint(b)
    # Even if the two digests collided: the part after the hash tag still differs.
    tails_a = {key.split(b"}:", 1)[1] for key in a}
    tails_b = {key.split(b"}:", 1)[1] for key in b}
    assert tails_a.isdisjoint(tails_b)


@pytest.mark.parametrize(
    ("first", "second"),
    [("a", "b"), ("1:x", "x"), ("x", "1:x"), ("a:b", "a"), ("{a}", "a"), ("\ud800", "\ufffd"),
     ("é", "e\u0301"), ("1", "11")],
)
def test_known_tricky_pairs_are_disjoint(first: str, second: str) -> None:
    space = KeySpace("recostate")
    a, b = all_keys(space.state(first), range(0, 120)), all_keys(space.state(second), range(0, 120))
    assert set(a).isdisjoint(b)
    assert {key.split(b"}:", 1)[1] for key in a}.isdisjoint({key.split(b"}:", 1)[1] for key in b})


def test_one_id_has_distinct_keys() -> None:
    every = all_keys(KeySpace("recostate").state("x"), range(0, 200))
    assert len(every) == len(set(every))


@BOUNDED
@given(IDS, PREFIXES, TAGS)
def test_every_key_starts_with_the_prefix(state_id: str, prefix: str, tag: str) -> None:
    space = KeySpace(prefix)
    raw_prefix = prefix.encode("utf-8")
    for key in [*all_keys(space.state(state_id), range(1, 4)), space.tag(tag)]:
        assert key.startswith(raw_prefix + b":")


@BOUNDED
@given(IDS, PREFIXES)
def test_id_from_state_key_inverts_state(state_id: str, prefix: str) -> None:
    space = KeySpace(prefix)
    assert space.id_from_state_key(space.state(state_id).state) == state_id


def test_encode_id_is_one_to_one_for_lone_surrogates() -> None:
    assert encode_id("\ud800") != encode_id("\ufffd")
    assert encode_id("\ud800").decode("utf-8", "surrogatepass") == "\ud800"
    assert encode_id("🙂") == "🙂".encode()


def test_glob_escape_escapes_each_special_character() -> None:
    assert glob_escape(b"a*b?c[d]e\\f") == b"a\\*b\\?c\\[d\\]e\\\\f"
    assert glob_escape(b"plain:prefix-1") == b"plain:prefix-1"


@pytest.mark.parametrize("prefix", ["recostate", "a*b", "a?b", "a[bc]d", "a\\b", "*", "[]", "x:y"])
def test_state_pattern_escapes_the_prefix(prefix: str) -> None:
    space = KeySpace(prefix)
    pattern = space.state_pattern()
    assert pattern.startswith(glob_escape(prefix.encode()) + b":{")
    assert pattern.endswith(b"}:s:*")
    for special in b"*?[]\\":
        count = prefix.encode().count(special)
        assert pattern.count(b"\\" + bytes([special])) >= count


@pytest.mark.parametrize(
    ("prefix", "other"),
    [("a*b", "aXXb"), ("a?b", "aXb"), ("a[bc]d", "abd"), ("a\\b", "ab"), ("*", "anything")],
)
def test_state_pattern_does_not_match_keys_of_lookalike_prefixes(prefix: str, other: str) -> None:
    space = KeySpace(prefix)
    pattern = space.state_pattern()
    assert redis_glob_match(pattern, space.state("id").state)
    assert not redis_glob_match(pattern, KeySpace(other).state("id").state)


@BOUNDED
@given(IDS, PREFIXES, TAGS)
def test_state_pattern_matches_state_hashes_only(state_id: str, prefix: str, tag: str) -> None:
    space = KeySpace(prefix)
    keys = space.state(state_id)
    pattern = space.state_pattern()
    assert redis_glob_match(pattern, keys.state)
    for key in all_keys(keys)[1:]:
        assert not redis_glob_match(pattern, key)


@pytest.mark.parametrize("state_id", SAMPLE_IDS)
def test_tag_keys_are_not_state_hashes(state_id: str) -> None:
    space = KeySpace("recostate")
    lookalike = "{" + "0" * HASH_TAG_LENGTH + "}:s:" + state_id
    assert not redis_glob_match(space.state_pattern(), space.tag(lookalike))
