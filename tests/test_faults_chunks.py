"""Faults in the middle of chunked saves: references stay exact, no piece is lost or left over.

A save of a chunked state is one script: it is applied whole or not at all,
whatever happens to the connection or the server. These tests cut
connections, drop replies the server already sent and kill the server with
``kill -9`` while chunked states are saved, then audit every state (every
piece sound and referred to, every reference count exact) and load every
acknowledged version.
"""

from __future__ import annotations

import asyncio
import random
import string
from typing import Any

import pytest

from recostate import RedisStatePersistence, StoreUnavailableError
from recostate._storage.scripts import SAVE
from recostate.cli import raw
from recostate.testing import EmbeddedRedis, find_server
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.integration

HANG = 30.0


def agent_state(steps: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(300)]
    return {
        "step": steps,
        "messages": [" ".join(rng.choices(words, k=180)) for _ in range(steps)],
    }


def make_store(url: str, **options: Any) -> RedisStatePersistence:
    options.setdefault("retries", 20)
    options.setdefault("retry_backoff", 0.005)
    options.setdefault("key_prefix", "faults-chunks")
    options.setdefault("max_versions", 1000)
    return RedisStatePersistence(
        url, redis_options={"socket_timeout": 2.0, "socket_connect_timeout": 1.0}, **options
    )


async def audited(store: RedisStatePersistence, state_id: str) -> None:
    assert await raw.check_pieces(store, state_id) == []


@pytest.fixture
def binary() -> Any:
    found = find_server()
    if found is None:
        pytest.skip("no redis-server binary found")
    return found


async def test_lost_replies_to_chunked_saves_leave_exact_references(binary: Any) -> None:
    with EmbeddedRedis(binary) as server:
        async with FaultProxy(server.port) as proxy:
            store = make_store(proxy.url)
            try:
                for steps in range(20, 40):
                    if steps % 3 == 0:
                        # The server applies the save, its reply never arrives:
                        # the retry with the same write id writes nothing twice.
                        proxy.drop_reply_to(SAVE.sha.encode())
                    meta = await asyncio.wait_for(store.save("s", agent_state(steps, 1)), HANG)
                    assert meta.version == steps - 19
                versions = await store.list_versions("s")
                assert [m.version for m in versions] == list(range(1, 21))
                for meta in versions:
                    assert await store.load("s", meta.version) == agent_state(meta.version + 19, 1)
                await audited(store, "s")
            finally:
                await store.aclose()


async def test_cut_connections_during_chunked_saves_leave_exact_references(binary: Any) -> None:
    with EmbeddedRedis(binary) as server:
        async with FaultProxy(server.port) as proxy:
            stores = [make_store(proxy.url) for _ in range(3)]
            acknowledged: dict[str, list[int]] = {f"w{i}": [] for i in range(3)}
            stop = asyncio.Event()

            async def cutter() -> None:
                while not stop.is_set():
                    await asyncio.sleep(random.uniform(0.005, 0.02))
                    proxy.cut_all()

            async def writer(store: RedisStatePersistence, state_id: str, seed: int) -> None:
                for steps in range(10, 40):
                    try:
                        meta = await asyncio.wait_for(
                            store.save(state_id, agent_state(steps, seed)), HANG
                        )
                    except StoreUnavailableError:
                        continue
                    acknowledged[state_id].append(meta.version)

            cutting = asyncio.create_task(cutter())
            try:
                await asyncio.gather(
                    *(writer(s, sid, i) for i, (s, sid) in enumerate(zip(stores, acknowledged, strict=True)))
                )
            finally:
                stop.set()
                await cutting
            assert proxy.cuts > 0
            reader = make_store(server.url)
            try:
                for state_id, versions in acknowledged.items():
                    assert versions, "every save failed: the test proved nothing"
                    await audited(reader, state_id)
                    stored = [m.version for m in await reader.list_versions(state_id)]
                    assert set(versions) <= set(stored)
                    for version in stored:
                        assert await reader.load(state_id, version) is not None
            finally:
                await reader.aclose()
                for store in stores:
                    await store.aclose()


async def test_kill_9_during_chunked_saves_leaves_exact_references(binary: Any) -> None:
    embedded = EmbeddedRedis(binary, args=["--appendonly", "yes", "--appendfsync", "always"])
    with embedded:
        # One retry: the outage must reach the caller, or nothing was cut mid-save.
        store = make_store(embedded.url, retries=1)
        acknowledged: dict[int, int] = {}
        outages: list[StoreUnavailableError] = []
        stop = asyncio.Event()

        async def writer() -> None:
            steps = 10
            while not stop.is_set():
                steps += 1
                try:
                    meta = await asyncio.wait_for(store.save("s", agent_state(steps, 3)), HANG)
                except StoreUnavailableError as exc:
                    outages.append(exc)
                    await asyncio.sleep(0.01)
                    continue
                acknowledged[meta.version] = steps

        async def crash() -> None:
            await asyncio.sleep(0.3)
            embedded.kill()
            await asyncio.sleep(0.2)
            await asyncio.to_thread(embedded.start)
            await asyncio.sleep(0.3)
            stop.set()

        try:
            await asyncio.wait_for(asyncio.gather(crash(), writer()), HANG * 2)
            assert acknowledged and outages, "the crash caught no save: the test proved nothing"
            await audited(store, "s")
            for version, steps in acknowledged.items():
                assert await store.load("s", version) == agent_state(steps, 3)
        finally:
            await store.aclose()
