"""Signed states: ``signing_key=`` (HMAC-SHA256 over the stored frame, with key ids).

Whoever changes a stored state without the key, whether by flipping bytes, by
writing an unsigned frame, by signing with another key, or by copying a signed
frame from another state, gets an ``IntegrityError`` from the store that holds
the key, never the changed state.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
import redis.asyncio as aioredis

import recostate.sync
from recostate import ConfigurationError, IntegrityError, RedisStatePersistence
from recostate._codec.frame import PREFIX_SIZE
from recostate._signing import MAC_SIZE, SigningKeys, derived_key_id
from tests.conftest import MakeStore, ServerHandle
from tests.layout import aget_version, aset_version, state_keys

pytestmark = pytest.mark.integration

OLD = b"o" * 32
NEW = bytes(range(32))
STRANGER = b"s" * 32


def state_key(prefix: str, state_id: str) -> bytes:
    return state_keys(prefix, state_id).state


async def test_signed_round_trip_and_checksum_names_the_algorithm_and_key(
    make_store: MakeStore, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    store = make_store(signing_key=[("2026-11", NEW), ("2026-05", OLD)])
    small = await store.save("a", {"n": 1})
    big = await store.save("a", {"blob": "x" * 50_000})  # compressed, and framed the same way
    for meta in (small, big):
        algorithm, key_id, digest = meta.checksum.split(":")
        assert (algorithm, key_id, len(digest)) == ("hmac-sha256", "2026-11", 2 * MAC_SIZE)
    assert big.compression_type.value == "lz4"
    assert await store.load("a") == {"blob": "x" * 50_000}
    assert await store.load("a", 1) == {"n": 1}
    # The readable head fields, written by the Lua side, name the same checksum.
    assert await raw_redis.hget(state_key(key_prefix, "a"), "checksum") == big.checksum.encode()
    assert await store.get_metadata("a") == big
    assert [m.checksum for m in await store.list_versions("a")] == [small.checksum, big.checksum]


async def test_unsigned_frames_keep_their_crc32_name_on_both_sides(
    make_store: MakeStore, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    meta = await make_store().save("u", [1, 2])
    assert meta.checksum.startswith("crc32:")
    assert await raw_redis.hget(state_key(key_prefix, "u"), "checksum") == meta.checksum.encode()


async def test_a_flipped_byte_anywhere_fails_the_signature(
    make_store: MakeStore, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    store = make_store(signing_key=NEW)
    await store.save("a", {"balance": 100})
    key = (key_prefix, "a", 1)
    frame = await aget_version(raw_redis, *key)
    for index in (0, 4, PREFIX_SIZE + 3, len(frame) - MAC_SIZE - 1, len(frame) - 1):
        changed = bytearray(frame)
        changed[index] ^= 0x01
        await aset_version(raw_redis, *key, bytes(changed))
        with pytest.raises(IntegrityError):
            await store.load("a")
    await aset_version(raw_redis, *key, frame)
    assert await store.load("a") == {"balance": 100}


async def test_a_state_rewritten_without_the_key_is_refused(
    make_store: MakeStore, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    """An attacker who can write to Redis but holds no key: an unsigned frame with a
    valid CRC, or a frame signed with their own key under the same key id."""
    signed = make_store(signing_key=[("k1", NEW)])
    await signed.save("a", {"balance": 100})
    key = (key_prefix, "a", 1)

    # 1. A well-formed unsigned frame, written by a store without a key.
    unsigned = make_store()
    await unsigned.save("forged", {"balance": 1_000_000})
    await aset_version(raw_redis, *key, await aget_version(raw_redis, key_prefix, "forged", 1))
    with pytest.raises(IntegrityError, match="not signed"):
        await signed.load("a")

    # 2. A frame signed with another key that claims the same key id.
    forger = make_store(signing_key=[("k1", STRANGER)])
    await forger.save("a2", {"balance": 1_000_000})
    frame = await aget_version(raw_redis, key_prefix, "a2", 1)
    await aset_version(raw_redis, *key, frame)
    with pytest.raises(IntegrityError, match="signature mismatch"):
        await signed.load("a")


async def test_a_signed_frame_copied_from_another_state_is_refused(
    make_store: MakeStore, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    """The signature covers the state id: a genuine frame of one state, copied
    under another, does not verify there."""
    store = make_store(signing_key=NEW)
    await store.save("alice", {"role": "admin"})
    await store.save("mallory", {"role": "guest"})
    genuine = await aget_version(raw_redis, key_prefix, "alice", 1)
    await aset_version(raw_redis, key_prefix, "mallory", 1, genuine)
    with pytest.raises(IntegrityError, match="signature mismatch"):
        await store.load("mallory")
    with pytest.raises(IntegrityError):
        await store.rollback("mallory", 1)


async def test_key_rotation_old_keys_verify_new_key_signs(make_store: MakeStore) -> None:
    before = make_store(signing_key=[("v1", OLD)])
    await before.save("s", {"step": 1})

    rotated = make_store(signing_key=[("v2", NEW), ("v1", OLD)])
    assert await rotated.load("s") == {"step": 1}
    meta = await rotated.save("s", {"step": 2})
    assert meta.checksum.split(":")[1] == "v2"
    rolled = await rotated.rollback("s", 1)  # re-signed with the new key
    assert rolled.checksum.split(":")[1] == "v2"

    # A store that still holds only the old key cannot check the new frames.
    with pytest.raises(IntegrityError, match="does not hold"):
        await before.load("s")
    # Once the old key is retired, the frames it signed are refused, and new ones read.
    retired = make_store(signing_key=[("v2", NEW)])
    with pytest.raises(IntegrityError, match="does not hold"):
        await retired.load("s", 1)
    assert await retired.load("s") == {"step": 1}
    assert await retired.load("s", 2) == {"step": 2}


async def test_bare_keys_get_stable_derived_ids(make_store: MakeStore) -> None:
    first = make_store(signing_key=OLD)
    meta = await first.save("s", 1)
    assert meta.checksum.split(":")[1] == derived_key_id(OLD)
    rotated = make_store(signing_key=[NEW, OLD])
    assert await rotated.load("s") == 1
    assert (await rotated.save("s", 2)).checksum.split(":")[1] == derived_key_id(NEW)


async def test_signed_and_unsigned_stores_refuse_each_others_frames(make_store: MakeStore) -> None:
    signed = make_store(signing_key=NEW)
    unsigned = make_store()
    await signed.save("signed", 1)
    await unsigned.save("plain", 1)
    with pytest.raises(IntegrityError, match="no signing_key"):
        await unsigned.load("signed")
    with pytest.raises(IntegrityError, match="no signing_key"):
        await unsigned.get_metadata("signed")
    with pytest.raises(IntegrityError, match="accepts signed frames only"):
        await signed.load("plain")
    with pytest.raises(IntegrityError, match="accepts signed frames only"):
        await signed.list_versions("plain")
    stats = (await signed.get_stats())["store"]
    assert stats["integrity_failures"] == 2


async def test_mac_is_hmac_sha256_over_the_documented_bytes(
    make_store: MakeStore, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    """The layout in recostate._codec is what is stored: recompute the MAC by hand."""
    await make_store(signing_key=[("kid", NEW)]).save("s", {"a": 1})
    frame = await aget_version(raw_redis, key_prefix, "s", 1)
    checksum_len = frame[5]
    assert (
        frame[4] == 2
        and frame[PREFIX_SIZE] == 3
        and frame[PREFIX_SIZE + 1 : PREFIX_SIZE + 4] == b"kid"
    )
    end = PREFIX_SIZE + checksum_len
    bound = len(b"s").to_bytes(4, "big") + b"s"
    expected = hmac.new(NEW, bound + frame[: end - MAC_SIZE] + frame[end:], hashlib.sha256).digest()
    assert frame[end - MAC_SIZE : end] == expected


def test_keys_never_appear_in_repr_or_messages() -> None:
    store = RedisStatePersistence("redis://127.0.0.1:1/0", signing_key=[("k", NEW)])
    assert NEW.hex() not in repr(store.config) and repr(NEW) not in repr(store.config)
    assert "key_ids=('k',)" in repr(store.config.signing)
    with pytest.raises(ConfigurationError) as info:
        RedisStatePersistence("redis://127.0.0.1:1/0", signing_key=b"short-secret")
    assert "short-secret" not in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"15-bytes-secret",
        "a str key of enough length",
        [],
        {},
        [("k", NEW), ("k", OLD)],
        [("", NEW)],
        [("has space", NEW)],
        [("k" * 33, NEW)],
        [("k", NEW, OLD)],
        [(1, NEW)],
        [("k", "str key of enough length")],
        {"k": b"short"},
        {5: NEW},
        42,
        True,
        object(),
    ],
)
def test_bad_signing_keys_are_configuration_errors(value: Any) -> None:
    with pytest.raises(ConfigurationError):
        RedisStatePersistence("redis://127.0.0.1:1/0", signing_key=value)


def test_accepted_forms() -> None:
    for value, ids in [
        (NEW, (derived_key_id(NEW),)),
        (bytearray(NEW), (derived_key_id(NEW),)),
        ([NEW, OLD], (derived_key_id(NEW), derived_key_id(OLD))),
        ([("b", NEW), OLD], ("b", derived_key_id(OLD))),
        ({"b": NEW, "a": OLD}, ("b", "a")),
    ]:
        keys = SigningKeys.build(value)
        assert keys is not None and keys.key_ids == ids and keys.signing_id == ids[0]


def test_sync_facade_takes_the_same_option(redis_server: ServerHandle, key_prefix: str) -> None:
    with recostate.sync.RedisStatePersistence(
        redis_server.url, key_prefix=key_prefix, signing_key=NEW, **redis_server.options
    ) as store:
        assert store.save("s", 1).checksum.startswith("hmac-sha256:")
        assert store.load("s") == 1
        assert store.delete("s")
