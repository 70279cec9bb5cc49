"""States written by recostate 0.1 (storage format 1) keep working, and ``recostate migrate`` moves them.

``tests/data/recostate-0.1.0.json`` holds every key recostate 0.1.0 (git
50a889e) wrote for the calls its ``calls`` field lists, dumped with its type,
value and remaining time to live, and the states each version held. The
tests write those keys back into a server, byte for byte, and use them with
today's store: each state is upgraded in place the first time a store
touches it, or all at once by ``recostate migrate``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from click.testing import CliRunner
from redis.asyncio.cluster import RedisCluster

from recostate import RedisStatePersistence
from recostate.cli import cli
from tests.conftest import ServerHandle
from tests.layout import ahead_record, state_keys

pytestmark = pytest.mark.integration

FIXTURE = json.loads((Path(__file__).parent / "data" / "recostate-0.1.0.json").read_text("utf-8"))
PREFIX: str = FIXTURE["key_prefix"]
SIGNING = bytes.fromhex(FIXTURE["signing_key_hex"])
#: The state of "zlib-big", too large to keep in the fixture's JSON.
BIG = {"doc": "lorem ipsum dolor sit amet " * 12000, "items": list(range(2000))}


def expected() -> dict[str, dict[int, Any]]:
    out: dict[str, dict[int, Any]] = {}
    for state_id, versions in FIXTURE["expected"].items():
        out[state_id] = {int(v): (BIG if state_id == "zlib-big" else s) for v, s in versions.items()}
    return out


def _b(text: str) -> bytes:
    return base64.b64decode(text)


def sync_client(server: ServerHandle) -> redis.Redis | redis.RedisCluster:
    """A blocking client of the server under test (a cluster client on a cluster)."""
    if server.cluster is not None:
        return redis.RedisCluster.from_url(server.url)
    return redis.Redis.from_url(server.url)


def restore(server: ServerHandle, prefix: str) -> None:
    """Write the fixture's keys under ``prefix`` (in place of its own)."""
    client = sync_client(server)
    try:
        for encoded, entry in FIXTURE["keys"].items():
            key = prefix.encode() + _b(encoded)[len(PREFIX) :]
            kind, value = entry["type"], entry["value"]
            if kind == "string":
                client.set(key, _b(value))
            elif kind == "hash":
                client.hset(key, mapping={_b(f): _b(v) for f, v in value.items()})
            elif kind == "zset":
                client.zadd(key, {_b(m): score for m, score in value})
            elif kind == "set":
                client.sadd(key, *[_b(m) for m in value])
            if entry["ttl_ms"]:
                client.pexpire(key, entry["ttl_ms"])
    finally:
        client.close()


def _legacy_keys(keys: list[bytes]) -> list[bytes]:
    """The 0.1-only keys among ``keys``: version index, write ids, one string per version."""
    out = []
    for key in keys:
        kind = key.split(b"}:", 1)[1].split(b":", 1)[0] if b"}:" in key else b""
        if kind in (b"i", b"w") or (kind.startswith(b"v") and kind[1:].isdigit()):
            out.append(key)
    return out


async def _all_keys(client: aioredis.Redis | RedisCluster, prefix: str) -> list[bytes]:
    return [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]


def _all_keys_now(server: ServerHandle, prefix: str) -> list[bytes]:
    client = sync_client(server)
    try:
        return list(client.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        client.close()


def _store(server: ServerHandle, prefix: str, **options: Any) -> RedisStatePersistence:
    return RedisStatePersistence(
        server.url, key_prefix=prefix, max_versions=100, **server.options, **options
    )


async def test_a_store_reads_and_writes_0_1_states_upgrading_each_when_first_touched(
    redis_server: ServerHandle, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    restore(redis_server, key_prefix)
    assert _legacy_keys(await _all_keys(raw_redis, key_prefix))
    async with _store(redis_server, key_prefix) as store:
        for state_id, versions in expected().items():
            if state_id == "signed":
                continue
            listed = await store.list_versions(state_id)
            assert [m.version for m in listed] == sorted(versions), state_id
            for number, state in versions.items():
                assert await store.load(state_id, number) == state, (state_id, number)
        rolled = await store.get_metadata("rolled", 4)
        assert rolled is not None and rolled.rolled_back_from == 1
        head = await store.get_metadata("plain")
        assert head is not None and head.version == 5 and head.tags == ("agents", "plain")
        assert sorted(await store.list_states(tag="agents")) == ["plain", "{tricky}: id 🙂"]
        # Numbering goes on after the highest number 0.1 gave.
        assert (await store.save("plain", {"step": 6})).version == 6
        assert (await store.save("head-deleted", {"v": 4})).version == 4
    async with _store(redis_server, key_prefix, signing_key=[("k1", SIGNING)]) as signed:
        assert await signed.load("signed") == {"secret": "yes"}
        assert await signed.list_states(tag="signed") == ["signed"]
    # Every state was touched: nothing of the 0.1 layout is left.
    assert _legacy_keys(await _all_keys(raw_redis, key_prefix)) == []
    # Each head is in its record (one HGET reads it), not under its number too.
    for state_id in expected():
        keys = state_keys(key_prefix, state_id)
        head_number: Any = await raw_redis.hget(keys.state, "version")
        created: Any = await raw_redis.hget(keys.state, "created_at_ms")
        record = await ahead_record(raw_redis, key_prefix, state_id)
        assert record is not None and record[:2] == (int(head_number), int(created)), state_id
        assert not await raw_redis.hexists(keys.all[2], head_number), state_id


async def test_an_upgraded_state_keeps_its_expiry_on_every_key(
    redis_server: ServerHandle, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    restore(redis_server, key_prefix)
    async with _store(redis_server, key_prefix) as store:
        assert await store.load("expiring") == {"session": 2}
        keys = store.storage.keys("expiring").all
    ttls = [await raw_redis.pttl(key) for key in keys]
    present = [ttl for ttl in ttls if ttl != -2]
    assert len(present) >= 3  # state hash, version list, versions
    assert all(80_000_000 < ttl <= 86_400_000 for ttl in present), ttls


def test_migrate_moves_every_state_once_and_can_be_run_again(
    redis_server: ServerHandle, key_prefix: str
) -> None:
    if redis_server.cluster is not None:
        pytest.skip("the command's --cluster flag is covered in tests/test_cli.py")
    restore(redis_server, key_prefix)
    try:
        runner = CliRunner()
        base = ["--url", redis_server.url, "--prefix", key_prefix]
        first = runner.invoke(cli, [*base, "migrate", "--no-progress"])
        assert first.exit_code == 0, first.output
        states = len(FIXTURE["expected"])
        assert f"migrated {states} state(s)" in first.output
        assert _legacy_keys(_all_keys_now(redis_server, key_prefix)) == []
        again = runner.invoke(cli, [*base, "migrate", "--no-progress"])
        assert again.exit_code == 0, again.output
        assert (
            f"migrated 0 state(s) (0 version(s)); {states} already in the current layout"
            in again.output
        )
        verify = runner.invoke(cli, [*base, "verify"])
        # The signed state needs its key: verify names it, and nothing else.
        assert "FAILED 'signed'" in verify.output, verify.output
        assert all("'signed'" in line for line in verify.output.splitlines() if "FAILED" in line)
        signed = runner.invoke(
            cli, [*base, "verify"], env={"RECOSTATE_SIGNING_KEYS": f"k1:{SIGNING.hex()}"}
        )
        assert "FAILED 'signed'" not in signed.output
    finally:
        client = sync_client(redis_server)
        try:
            for key in client.scan_iter(match=f"{key_prefix}*", count=1000):
                client.delete(key)
        finally:
            client.close()
