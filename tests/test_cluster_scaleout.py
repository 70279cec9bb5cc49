"""Scale-out on a real Redis Cluster: failover, resharding, listing and tags on every primary.

These run on the session's cluster (3 primaries, 1 replica each, see
``tests/conftest.py``), and leave it healthy: a killed primary is started
again and rejoins as a replica.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from recostate import RedisStatePersistence, ReplicationError, StoreUnavailableError
from recostate._redis.cluster_pipeline import ClusterAutoPipeline
from recostate._storage.keys import KeySpace
from recostate.testing import EmbeddedCluster, admin_command

pytestmark = pytest.mark.integration

Acked = dict[tuple[str, int], dict[str, Any]]


@pytest.fixture
async def cluster(embedded_cluster: EmbeddedCluster) -> AsyncIterator[EmbeddedCluster]:
    embedded_cluster.wait_healthy()
    yield embedded_cluster
    # Whatever a test broke, the next one finds a whole cluster.
    for node in embedded_cluster.nodes:
        if node.pid is None:
            embedded_cluster.restart(node.port)
    await anyio.to_thread.run_sync(embedded_cluster.wait_healthy)


@pytest.fixture
async def cluster_store(
    cluster: EmbeddedCluster,
) -> AsyncIterator[Callable[..., RedisStatePersistence]]:
    prefix = f"rsc-{uuid.uuid4().hex[:10]}"
    made: list[RedisStatePersistence] = []

    def make(**options: Any) -> RedisStatePersistence:
        options.setdefault("key_prefix", prefix)
        store = RedisStatePersistence(cluster.url, cluster=True, **options)
        made.append(store)
        return store

    yield make
    cleaner = RedisCluster.from_url(cluster.url)
    try:
        keys = {k async for k in cleaner.scan_iter(match=f"{prefix}*", count=1000)}
        if keys:
            await cleaner.delete(*keys)
    finally:
        await cleaner.aclose()
        for store in made:
            await store.aclose()


def _slot(keys: KeySpace, state_id: str) -> int:
    return key_slot(keys.state(state_id).state)


def _owner(cluster: EmbeddedCluster, slot: int) -> int:
    for node in cluster.primaries():
        if any(low <= slot <= high for low, high in node.slots):
            return node.port
    raise AssertionError(f"no primary serves slot {slot}")


async def _save_until_acked(
    store: RedisStatePersistence,
    state_id: str,
    state: dict[str, Any],
    deadline: float,
    tags: list[str] | None = None,
) -> int:
    """Save, riding out StoreUnavailableError (the failover window); return the version."""
    while True:
        try:
            return (await store.save(state_id, state, tags=tags)).version
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def _writer(
    store: RedisStatePersistence,
    ids: list[str],
    writes: int,
    acked: Acked,
    stop_at: float,
    tags: list[str] | None = None,
) -> int:
    unavailable = 0
    for n in range(writes):
        state_id = ids[n % len(ids)]
        state = {"n": n, "id": state_id}
        try:
            version = (await store.save(state_id, state, tags=tags)).version
        except StoreUnavailableError:
            unavailable += 1
            version = await _save_until_acked(store, state_id, state, stop_at, tags)
        acked[(state_id, version)] = state
        await asyncio.sleep(0.002)
    return unavailable


async def _check_acked(store: RedisStatePersistence, acked: Acked) -> None:
    for (state_id, version), state in acked.items():
        assert await store.load(state_id, version) == state, (state_id, version)


async def test_failover_keeps_every_acknowledged_write(
    cluster: EmbeddedCluster, cluster_store: Callable[..., RedisStatePersistence]
) -> None:
    # WAIT 1 with each save: a write is acknowledged once the replica has it,
    # so the replica that takes over holds every acknowledged version.
    store = cluster_store(max_versions=1000, wait_for_replicas=1, wait_timeout=2.0)
    victim = cluster.primaries()[0]
    keys = KeySpace(store.config.key_prefix)
    ids = [f"w-{i}" for i in range(300)]
    on_victim = [i for i in ids if _owner(cluster, _slot(keys, i)) == victim.port]
    elsewhere = [i for i in ids if i not in on_victim]
    assert on_victim and elsewhere
    acked: Acked = {}
    stop_at = time.monotonic() + 60
    with anyio.fail_after(90):
        writers = [
            asyncio.create_task(_writer(store, on_victim[w::4], 150, acked, stop_at))
            for w in range(4)
        ] + [
            asyncio.create_task(_writer(store, elsewhere[w::2], 150, acked, stop_at))
            for w in range(2)
        ]
        await asyncio.sleep(0.2)
        assert acked, "the writers are running"
        await anyio.to_thread.run_sync(cluster.kill, victim.port)
        promoted = await anyio.to_thread.run_sync(cluster.wait_promoted, victim)
        # The promoted node has no replica to acknowledge WAIT 1 (saves to it
        # raise ReplicationError, a StoreUnavailableError) until the old
        # primary is back, as its replica.
        await anyio.to_thread.run_sync(cluster.restart, victim.port)
        unavailable = await asyncio.gather(*writers)
    assert promoted != victim.port
    assert len(acked) == 6 * 150
    # The killed primary's writers saw the outage (as StoreUnavailableError only).
    assert sum(unavailable[:4]) > 0
    await _check_acked(store, acked)
    # The promoted replica had no scripts cached: NOSCRIPT was answered by a reload.
    assert await store.load(on_victim[0]) is not None
    assert sorted(await store.list_states()) == sorted(set(on_victim) | set(elsewhere))
    await anyio.to_thread.run_sync(cluster.wait_healthy)
    assert victim.port not in [n.port for n in cluster.primaries()]
    await _check_acked(store, acked)


async def test_resharding_under_writes_loses_nothing(
    cluster: EmbeddedCluster, cluster_store: Callable[..., RedisStatePersistence]
) -> None:
    store = cluster_store(max_versions=1000)
    # Half the writers wait for a replica: their script and WAIT must reach the
    # slot's primary together, whichever node that is by then.
    durable = cluster_store(max_versions=1000, wait_for_replicas=1, wait_timeout=2.0)
    source, target = cluster.primaries()[:2]
    keys = KeySpace(store.config.key_prefix)
    ids = [f"r-{i}" for i in range(400)]
    moving = [i for i in ids if _owner(cluster, _slot(keys, i)) == source.port][:40]
    assert len(moving) == 40
    slots = sorted({_slot(keys, i) for i in moving})
    for state_id in moving:
        await store.save(state_id, {"n": -1, "id": state_id}, tags=["moving"])
    acked: Acked = {}
    stop_at = time.monotonic() + 60
    mismatches: list[str] = []

    async def reader() -> None:
        # Every state exists before the move starts: a load must never miss it.
        while not done.is_set():
            state_id = random.choice(moving)
            if await store.load(state_id) is None:
                mismatches.append(state_id)
            await asyncio.sleep(0.001)

    done = asyncio.Event()
    with anyio.fail_after(90):
        writers = [
            asyncio.create_task(
                _writer(store if w % 2 else durable, moving[w::4], 120, acked, stop_at, ["moving"])
            )
            for w in range(4)
        ]
        readers = [asyncio.create_task(reader()) for _ in range(2)]
        await asyncio.sleep(0.05)
        moved = await anyio.to_thread.run_sync(cluster.move_slots, slots, source, target)
        during = len(acked)
        await asyncio.gather(*writers)
        done.set()
        await asyncio.gather(*readers)
    assert moved > 0
    assert 0 < during < len(acked) == 4 * 120, "the writers ran before, during and after the move"
    assert mismatches == []
    owners = {_owner(cluster, slot) for slot in slots}
    assert owners == {target.port}
    await _check_acked(store, acked)
    assert sorted(await store.list_states(tag="moving")) == sorted(moving)
    # Move them back, so the layout other tests see stays the one they started with.
    await anyio.to_thread.run_sync(cluster.move_slots, slots, target, source)
    await _check_acked(store, acked)


async def test_a_state_split_by_a_migration_is_never_reported_missing(
    cluster: EmbeddedCluster, cluster_store: Callable[..., RedisStatePersistence]
) -> None:
    # redis-cli --cluster reshard moves a slot's keys a few at a time, so a
    # state's hash and version list can reach the new node before its versions.
    store = cluster_store()
    source, target = cluster.primaries()[:2]
    keys = KeySpace(store.config.key_prefix)
    state_id = next(
        i for i in (f"m{n}" for n in range(500)) if _owner(cluster, _slot(keys, i)) == source.port
    )
    for n in range(3):
        await store.save(state_id, {"n": n})
    state = keys.state(state_id)
    slot = _slot(keys, state_id)
    admin_command(target.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
    admin_command(source.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
    moved_first = state.all[:2]
    admin_command(
        source.port, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *moved_first
    )

    async def finish_migration() -> None:
        await asyncio.sleep(0.2)
        rest = admin_command(source.port, "CLUSTER", "GETKEYSINSLOT", slot, 100)
        admin_command(source.port, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *rest)
        for node in cluster.primaries():
            admin_command(node.port, "CLUSTER", "SETSLOT", slot, "NODE", target.node_id)

    finishing = asyncio.create_task(finish_migration())
    try:
        loaded: object = await store.load(state_id)
    except StoreUnavailableError as exc:  # allowed: the slot took too long to move
        loaded = exc
    await finishing
    # Never "not found" for a state that exists: the state, or a retryable error.
    assert loaded == {"n": 2} or isinstance(loaded, StoreUnavailableError)
    assert await store.load(state_id) == {"n": 2}
    assert await store.get_metadata(state_id, 1) is not None
    await anyio.to_thread.run_sync(cluster.move_slots, [slot], target, source)


async def test_listing_finds_a_state_that_moves_while_the_scan_runs(
    cluster: EmbeddedCluster, cluster_store: Callable[..., RedisStatePersistence]
) -> None:
    store = cluster_store()
    keys = KeySpace(store.config.key_prefix)
    # Primaries are scanned in order of their "host:port" names.
    by_name = sorted(cluster.primaries(), key=lambda n: f"127.0.0.1:{n.port}")
    target, source = by_name[0], by_name[-1]
    ids = [f"s{i}" for i in range(90)]
    for state_id in ids:
        await store.save(state_id, state_id)
    owner = {i: _owner(cluster, _slot(keys, i)) for i in ids}
    mover = next(i for i in ids if owner[i] == source.port)
    slot = _slot(keys, mover)
    admin_command(target.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
    admin_command(source.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
    found: list[str] = []
    moved = False
    try:
        async for state_id in store.iter_states():
            found.append(state_id)
            if not moved and owner[state_id] != target.port:
                # The target has been scanned, the source not yet: the state
                # moves behind the scan's back.
                assert owner[state_id] != source.port and mover not in found
                moved = True
                moving = admin_command(source.port, "CLUSTER", "GETKEYSINSLOT", slot, 100)
                admin_command(
                    source.port, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *moving
                )
        assert moved
        assert sorted(found) == sorted(ids)
    finally:
        for node in cluster.primaries():
            admin_command(node.port, "CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        await anyio.to_thread.run_sync(cluster.move_slots, [slot], target, source)


async def test_listing_and_tags_cover_every_primary_and_stay_exact(
    cluster: EmbeddedCluster, cluster_store: Callable[..., RedisStatePersistence]
) -> None:
    store = cluster_store()
    keys = KeySpace(store.config.key_prefix)
    ids = [f"l-{i}" for i in range(60)]
    assert {_owner(cluster, _slot(keys, i)) for i in ids} == {n.port for n in cluster.primaries()}
    for state_id in ids:
        await store.save(state_id, {"id": state_id}, tags=["all", f"mod{int(state_id[2:]) % 3}"])
    assert sorted(await store.list_states()) == sorted(ids)
    assert sorted(await store.list_states(tag="all")) == sorted(ids)

    deleted, retagged, expired, trimmed = ids[:5], ids[5:10], ids[10:15], ids[15:20]
    for state_id in deleted:
        assert await store.delete(state_id)
    for state_id in retagged:
        await store.save(state_id, {"id": state_id}, tags=["other"])
    raw = RedisCluster.from_url(cluster.url)
    try:
        for state_id in expired:
            state = keys.state(state_id)
            for key in state.all:
                await raw.pexpire(key, 1)
        for state_id in trimmed:
            assert await store.prune(state_id, 0) == 1
        await asyncio.sleep(0.05)
        alive = ids[20:]
        assert sorted(await store.list_states()) == sorted(alive + retagged)
        assert sorted(await store.list_states(tag="all")) == sorted(alive)
        assert sorted(await store.list_states(tag="other")) == sorted(retagged)
        # delete and prune removed their memberships at once; the listing dropped the rest.
        members = {m.decode() for m in await raw.smembers(keys.tag("all")) if isinstance(m, bytes)}
        assert members == set(alive)
        assert sorted([s async for s in store.iter_states(tag="mod1")]) == sorted(
            i for i in alive if int(i[2:]) % 3 == 1
        )
    finally:
        await raw.aclose()


async def test_concurrent_retag_and_listing_never_lose_a_tagged_head(
    cluster: EmbeddedCluster, cluster_store: Callable[..., RedisStatePersistence]
) -> None:
    store = cluster_store()
    ids = [f"t-{i}" for i in range(12)]
    final: dict[str, bool] = {}

    async def flip(state_id: str) -> None:
        for n in range(30):
            tagged = (n + hash(state_id)) % 2 == 0
            await store.save(state_id, n, tags=["hot"] if tagged else ["cold"])
            final[state_id] = tagged

    async def lister() -> None:
        for _ in range(30):
            await store.list_states(tag="hot")

    with anyio.fail_after(60):
        await asyncio.gather(*(flip(i) for i in ids), lister(), lister())
    assert sorted(await store.list_states(tag="hot")) == sorted(i for i in ids if final[i])
    assert sorted(await store.list_states(tag="cold")) == sorted(i for i in ids if not final[i])


async def test_wait_for_replicas_reports_a_missing_replica(
    cluster: EmbeddedCluster, cluster_store: Callable[..., RedisStatePersistence]
) -> None:
    store = cluster_store(wait_for_replicas=1, wait_timeout=0.3)
    primary = cluster.primaries()[0]
    keys = KeySpace(store.config.key_prefix)
    state_id = next(
        i for i in (f"r{n}" for n in range(500)) if _owner(cluster, _slot(keys, i)) == primary.port
    )
    assert (await store.save(state_id, 1)).version == 1
    (replica,) = cluster.replicas_of(primary)
    await anyio.to_thread.run_sync(cluster.kill, replica.port)
    with pytest.raises(ReplicationError) as info:
        await store.save(state_id, 2, tags=["replicated"])
    assert (info.value.required, info.value.acknowledged, info.value.version) == (1, 0, 2)
    # The write was applied on the primary, as the error says, and counted as
    # one, with its tag membership kept up after it like any other save's.
    assert await store.load(state_id) == 2
    assert (await store.get_stats())["store"]["saves"] == 2
    assert await store.list_states(tag="replicated") == [state_id]


async def test_concurrent_calls_are_pipelined_per_node(
    cluster: EmbeddedCluster, cluster_store: Callable[..., RedisStatePersistence]
) -> None:
    store = cluster_store()
    ids = [f"p{i}" for i in range(300)]
    await asyncio.gather(*(store.save(i, {"i": i}, tags=["p"]) for i in ids))
    loaded = await asyncio.gather(*(store.load(i) for i in ids))
    assert loaded == [{"i": i} for i in ids]
    assert sorted(await store.list_states(tag="p")) == sorted(ids)
    pipe = store._executor._autopipe
    assert pipe is not None and isinstance(pipe[2], ClusterAutoPipeline)
    # Requests from concurrent callers shared round trips, on every primary.
    assert pipe[2].batches < pipe[2].requests
    assert len(pipe[2]._pipes) == len(cluster.primaries())


async def test_full_pool_wait_is_bounded_on_a_cluster(
    cluster_store: Callable[..., RedisStatePersistence],
) -> None:
    store = cluster_store(redis_options={"max_connections": 1, "pool_timeout": 0.2})
    metas = await asyncio.gather(*(store.save(f"p{i}", i) for i in range(30)))
    assert {m.version for m in metas} == {1}
    gate = store._executor._gate
    assert gate is not None and gate.size == 1
    async with gate.turn():  # a slow caller holds the only connection
        with pytest.raises(StoreUnavailableError, match="pool"):
            await store.load("p1")
    assert await store.load("p1") == 1
    pool = (await store.get_stats())["pool"]
    assert pool["kind"] == "cluster" and pool["max_connections"] == 1
    assert all(node["in_use"] + node["idle"] <= 1 for node in pool["nodes"].values())


async def test_stats_report_every_primary(
    cluster: EmbeddedCluster, cluster_store: Callable[..., RedisStatePersistence]
) -> None:
    store = cluster_store()
    await store.save("s", {"x": 1})
    stats = await store.get_stats()
    nodes = stats["redis_info"]["nodes"]
    assert {int(name.rsplit(":", 1)[1]) for name in nodes} == {n.port for n in cluster.primaries()}
    assert all(node["role"] == "master" and node["used_memory"] > 0 for node in nodes.values())
    assert stats["redis_info"]["used_memory"] == sum(n["used_memory"] for n in nodes.values())
    assert stats["redis_info"]["redis_mode"] == "cluster"
    assert stats["redis_info"]["primaries"] == 3
    assert len(stats["pool"]["nodes"]) >= 3


async def test_scripts_flushed_on_every_primary_are_reloaded(
    cluster: EmbeddedCluster, cluster_store: Callable[..., RedisStatePersistence]
) -> None:
    store = cluster_store()
    await store.save("a", 1)
    for node in cluster.primaries():
        admin_command(node.port, "SCRIPT", "FLUSH")
    ids = [f"f{i}" for i in range(20)]
    for state_id in ids:
        await store.save(state_id, state_id)
    assert [await store.load(i) for i in ids] == ids


async def test_client_passed_in_works_and_is_not_closed(
    cluster: EmbeddedCluster, cluster_store: Callable[..., RedisStatePersistence]
) -> None:
    prefix = cluster_store().config.key_prefix
    client = RedisCluster.from_url(cluster.url)
    try:
        async with RedisStatePersistence(client=client, key_prefix=prefix) as store:
            await store.save("c", {"v": 1}, tags=["t"])
            assert await store.list_states(tag="t") == ["c"]
            assert await store.delete("c")
        assert await client.ping() is True
    finally:
        await client.aclose()


def test_cluster_created_without_redis_cli() -> None:
    with EmbeddedCluster(primaries=3, replicas=0, use_cli=False) as small:
        assert small.cli is None
        primaries = small.primaries()
        assert len(primaries) == 3
        covered = sum(high - low + 1 for node in primaries for low, high in node.slots)
        assert covered == 16384

        async def use() -> list[str]:
            async with RedisStatePersistence(small.url, cluster=True) as store:
                for i in range(10):
                    await store.save(f"s{i}", i)
                return await store.list_states()

        assert sorted(anyio.run(use)) == sorted(f"s{i}" for i in range(10))
