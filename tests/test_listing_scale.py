"""Listing a large keyspace: SCAN pages, memory that does not grow with the number of states.

``iter_states`` remembers only a window of recent ids (SCAN returns a key
twice only while the server resizes its table, and then close together), so
listing 200,000 states holds no more memory than listing 20,000.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator

import pytest
import redis

from recostate import RedisStatePersistence
from recostate.testing import EmbeddedRedis, find_server
from tests.layout import state_keys

pytestmark = pytest.mark.integration

PREFIX = "scale"


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    binary = find_server()
    if binary is None:
        pytest.skip("no redis-server binary found")
    with EmbeddedRedis(binary) as embedded:
        yield embedded


def add_states(url: str, first: int, count: int) -> None:
    """Write ``count`` state hashes (all a listing reads) in pipelined batches."""
    client = redis.Redis.from_url(url)
    try:
        for start in range(first, first + count, 5000):
            pipe = client.pipeline(transaction=False)
            for n in range(start, min(first + count, start + 5000)):
                pipe.hset(state_keys(PREFIX, f"state-{n}").state, "version", 1)
            pipe.execute()
    finally:
        client.close()


def peak_while_listing(url: str) -> tuple[int, int]:
    """Return (ids listed, peak bytes allocated while listing them)."""

    async def listing() -> tuple[int, int]:
        async with RedisStatePersistence(url, key_prefix=PREFIX) as store:
            count = 0
            tracemalloc.start()
            try:
                async for _ in store.iter_states():
                    count += 1
                return count, tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    return asyncio.run(listing())


def test_listing_200000_states_holds_no_more_memory_than_listing_20000(
    server: EmbeddedRedis,
) -> None:
    add_states(server.url, 0, 20_000)
    small_count, small_peak = peak_while_listing(server.url)
    add_states(server.url, 20_000, 180_000)
    large_count, large_peak = peak_while_listing(server.url)
    assert small_count == 20_000
    # Each id once, unless the server resized its table mid-listing (it does
    # not here: nothing writes during the listing).
    assert large_count == 200_000
    # Ten times the states, about the same memory: the window of recent ids
    # is full in both listings; a set of every id would grow tenfold.
    assert large_peak < 2 * small_peak, (small_peak, large_peak)
