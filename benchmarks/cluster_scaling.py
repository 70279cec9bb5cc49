"""Throughput on a Redis Cluster as primaries go from 1 to 3, and the failover window.

Run with ``python -m benchmarks.cluster_scaling`` (``--help`` for the knobs).
Each step starts its own throwaway cluster (``recostate._cluster_server``) on
loopback ports, with no replicas so every node is a primary doing work (the
first step, for reference, one plain server with ``cluster=False``), runs
a save/load mix (20% saves) from client processes for a few seconds, and
stops the cluster. A last step kills a primary of a 3 x 2 cluster under load
and measures how long saves to its slots fail before its replica serves them.

All processes share one machine, so the figures say how recostate spreads
work across primaries and where the client becomes the limit, not what a
cluster of real machines would do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import time
from typing import Any

from redis.crc import key_slot

from benchmarks.workloads import make_state
from recostate import RedisStatePersistence, StoreUnavailableError
from recostate._cluster_server import EmbeddedCluster
from recostate._server import EmbeddedRedis, find_redis_server, redis_server_version
from recostate._storage.keys import KeySpace


async def _mix(
    url: str, seconds: float, tasks: int, size: int, seed: int, cluster: bool
) -> dict[str, float]:
    state = make_state(size)
    async with RedisStatePersistence(
        url, cluster=cluster, key_prefix=f"bench-{seed}", max_versions=2
    ) as store:
        keys = [f"k{seed}-{i}" for i in range(tasks * 8)]
        for start in range(0, len(keys), 64):
            await asyncio.gather(*(store.save(k, state) for k in keys[start : start + 64]))
        ops = 0
        deadline = time.perf_counter() + seconds

        async def worker(index: int) -> None:
            nonlocal ops
            rnd = random.Random(seed * 1000 + index)
            while time.perf_counter() < deadline:
                key = keys[rnd.randrange(len(keys))]
                if rnd.random() < 0.2:
                    await store.save(key, state)
                else:
                    await store.load(key)
                ops += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(tasks)))
        return {"ops": ops, "seconds": time.perf_counter() - began}


def _client_process(args: tuple[str, float, int, int, int, bool]) -> dict[str, float]:
    url, seconds, tasks, size, seed, cluster = args
    return asyncio.run(_mix(url, seconds, tasks, size, seed, cluster))


def _run_clients(
    url: str, cluster: bool, *, processes: int, seconds: float, tasks: int, size: int
) -> tuple[int, float]:
    jobs = [(url, seconds, tasks, size, seed, cluster) for seed in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_client_process, jobs)
    return sum(int(r["ops"]) for r in results), max(r["seconds"] for r in results)


def throughput(
    primaries: int, *, processes: int, seconds: float, tasks: int, size: int
) -> dict[str, Any]:
    """Run the mix against a fresh cluster of ``primaries`` primaries (0: one plain server)."""
    if primaries == 0:
        with EmbeddedRedis() as server:
            ops, elapsed = _run_clients(
                server.url, False, processes=processes, seconds=seconds, tasks=tasks, size=size
            )
    else:
        with EmbeddedCluster(primaries=primaries, replicas=0) as cluster:
            ops, elapsed = _run_clients(
                cluster.url, True, processes=processes, seconds=seconds, tasks=tasks, size=size
            )
    return {
        "primaries": primaries or "standalone",
        "client_processes": processes,
        "tasks_per_process": tasks,
        "state_bytes": size,
        "ops": ops,
        "ops_per_s": round(ops / elapsed, 1),
    }


async def _failover_window(cluster: EmbeddedCluster) -> dict[str, Any]:
    victim = cluster.primaries()[0]
    async with RedisStatePersistence(cluster.url, cluster=True, key_prefix="bench-fo") as store:
        keys = KeySpace("bench-fo")
        ids = [f"f{i}" for i in range(400)]
        on_victim = [
            i
            for i in ids
            if any(low <= key_slot(keys.state(i).state) <= high for low, high in victim.slots)
        ]
        for state_id in on_victim:
            await store.save(state_id, 0)
        failures = 0
        first_failure: float | None = None
        last_failure: float | None = None
        killed_at = 0.0
        stop = time.monotonic() + 30

        async def writer(state_id: str) -> None:
            nonlocal failures, first_failure, last_failure
            n = 0
            while time.monotonic() < stop:
                n += 1
                try:
                    await store.save(state_id, n)
                except StoreUnavailableError:
                    now = time.monotonic()
                    failures += 1
                    first_failure = first_failure or now
                    last_failure = now
                    await asyncio.sleep(0.02)
                    continue
                if last_failure is not None and time.monotonic() - last_failure > 2:
                    return
                await asyncio.sleep(0.005)

        tasks = [asyncio.create_task(writer(i)) for i in on_victim[:8]]
        await asyncio.sleep(0.5)
        killed_at = time.monotonic()
        await asyncio.to_thread(cluster.kill, victim.port)
        await asyncio.gather(*tasks)
        return {
            "cluster_node_timeout_ms": cluster.node_timeout_ms,
            "unavailable_errors": failures,
            "unavailable_window_s": round((last_failure or killed_at) - killed_at, 2),
        }


def failover_window() -> dict[str, Any]:
    """Kill a primary of a 3 x 2 cluster under writes; return how long saves to it failed."""
    with EmbeddedCluster(primaries=3, replicas=1) as cluster:
        return asyncio.run(_failover_window(cluster))


def main(argv: list[str] | None = None) -> int:
    """Run the scenario and print one JSON document."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster_scaling")
    parser.add_argument("--seconds", type=float, default=5.0, help="per step")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--tasks", type=int, default=32, help="concurrent tasks per process")
    parser.add_argument("--size", type=int, default=2048, help="state size in bytes")
    parser.add_argument("--max-primaries", type=int, default=3)
    parser.add_argument("--no-failover", action="store_true")
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args(argv)
    binary = find_redis_server()
    if binary is None:
        parser.error("no redis-server found")
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "redis_version": redis_server_version(binary),
        "steps": [
            throughput(
                n, processes=args.processes, seconds=args.seconds, tasks=args.tasks, size=args.size
            )
            for n in range(0, args.max_primaries + 1)
        ],
    }
    if not args.no_failover:
        report["failover"] = failover_window()
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as out:
            out.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
