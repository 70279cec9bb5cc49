"""get_stats() figures, and the README's demo command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from recostate import RedisStatePersistence
from tests.conftest import ServerHandle


async def test_stats_report_server_store_and_pool(store: RedisStatePersistence) -> None:
    await store.save("s", {"t": "x" * 10_000})
    await store.save("s", {"t": "small"})
    await store.load("s")
    await store.load("s", 1)
    stats = await store.get_stats()
    info = stats["redis_info"]
    assert isinstance(info["used_memory"], int) and info["used_memory"] > 0
    assert isinstance(info["redis_version"], str) and info["redis_version"][0].isdigit()
    assert isinstance(info["connected_clients"], int) and info["connected_clients"] >= 1
    counters = stats["store"]
    assert counters["saves"] == 2 and counters["loads"] == 2
    assert counters["conflicts"] == 0 and counters["integrity_failures"] == 0
    assert counters["bytes_raw"] > counters["bytes_stored"] > 0
    assert isinstance(counters["compression_ratio"], float) and counters["compression_ratio"] > 1
    pool = stats["pool"]
    assert pool["max_connections"] == 50 and pool["in_use"] + pool["idle"] >= 1


async def test_stats_counters_are_per_store(
    store: RedisStatePersistence, redis_server: ServerHandle, key_prefix: str
) -> None:
    await store.save("s", 1)
    async with RedisStatePersistence(
        redis_server.url, key_prefix=key_prefix, **redis_server.options
    ) as other:
        assert (await other.get_stats())["store"]["saves"] == 0
        assert (await other.get_stats())["store"]["compression_ratio"] == 1.0


def run_demo(redis_url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if redis_url:
        env["REDIS_URL"] = redis_url
    result = subprocess.run(
        [sys.executable, "-m", "recostate", "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Done." in result.stdout
    return result


def test_demo_runs_on_the_test_server(redis_server: ServerHandle) -> None:
    if redis_server.cluster is not None:
        pytest.skip("the demo reads a one-server REDIS_URL")
    result = run_demo(redis_server.url)
    assert "rolled back: version 4 restores version 1" in result.stdout
    assert "a moment later, exists: False" in result.stdout


def test_demo_starts_its_own_server() -> None:
    result = run_demo(None)
    assert "Started a throwaway redis-server" in result.stdout
    assert "rolled back: version 4 restores version 1" in result.stdout
