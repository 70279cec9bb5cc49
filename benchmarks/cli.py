"""``python -m benchmarks``: run the comparison and write the report.

Usage::

    python -m benchmarks                 # full run (a few minutes), throwaway redis-server
    python -m benchmarks --quick         # under a minute, a smaller matrix
    python -m benchmarks --redis-url redis://host:6379/0   # a server of your own

Against a server of your own, only keys under ``bench-<run id>-`` are written,
and they are deleted afterwards; the server is never flushed or reconfigured.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis

from benchmarks import ceiling, report, scenarios
from benchmarks.impls import contenders
from benchmarks.server import benchmark_server
from benchmarks.workloads import KiB, MiB, make_state

T = TypeVar("T")

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Plan:
    """What one run measures, and for how long."""

    mode: str
    tasks: tuple[int, ...]
    sizes: tuple[int, ...]
    ops: tuple[str, ...]
    seconds: float
    big_seconds: float
    rounds: int
    max_ops: int
    max_inflight_bytes: int
    uvloop_tasks: tuple[int, ...]
    uvloop_ops: tuple[str, ...]
    stall_size: int
    stall_repeats: int
    memory_states: int
    memory_saves: int
    soak_seconds: float
    soak_tasks: int
    ceiling_requests: int


FULL = Plan(
    mode="full",
    tasks=(1, 16, 64, 256),
    sizes=(KiB, 64 * KiB, MiB, 8 * MiB),
    ops=scenarios.OPS,
    seconds=1.2,
    big_seconds=1.0,
    rounds=4,
    max_ops=200_000,
    max_inflight_bytes=256 * MiB,
    uvloop_tasks=(1, 16, 64, 256),
    uvloop_ops=scenarios.OPS,
    stall_size=16 * MiB,
    stall_repeats=7,
    memory_states=48,
    memory_saves=40,
    soak_seconds=45.0,
    soak_tasks=64,
    ceiling_requests=200_000,
)

QUICK = Plan(
    mode="quick",
    tasks=(1, 64),
    sizes=(KiB, 64 * KiB),
    ops=scenarios.OPS,
    seconds=0.3,
    big_seconds=0.3,
    rounds=2,
    max_ops=20_000,
    max_inflight_bytes=64 * MiB,
    uvloop_tasks=(64,),
    uvloop_ops=("save", "load"),
    stall_size=2 * MiB,
    stall_repeats=1,
    memory_states=6,
    memory_saves=12,
    soak_seconds=3.0,
    soak_tasks=16,
    ceiling_requests=20_000,
)


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> dict[str, Any]:
    """Return where the figures come from: CPU, cores, OS, Python and library versions."""
    cores = os.cpu_count() or 0
    cpu = _cpu_model()
    python = platform.python_version()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on this platform
        load = []
    from recostate import _telemetry

    return {
        "summary": f"{cores} cores, {cpu}, Python {python}",
        "load_average_at_start": load,
        "opentelemetry_active": bool(_telemetry.ENABLED and _telemetry._active()),
        "cpu": cpu,
        "cores": cores,
        "platform": platform.platform(),
        "python": python,
        "packages": {
            name: _version(name)
            for name in (
                "recostate",
                "redis",
                "hiredis",
                "msgspec",
                "lz4",
                "anyio",
                "uvloop",
                "aiocache",
                "cashews",
            )
        },
    }


def _run(factory: Callable[[], Coroutine[Any, Any, T]], loop: str) -> T:
    if loop == "uvloop":
        import uvloop

        result: T = uvloop.run(factory())
        return result
    return asyncio.run(factory())


async def _server_version(url: str) -> str:
    client = aioredis.Redis.from_url(url)
    try:
        info = await client.info("server")
        return str(info.get("redis_version", "unknown"))
    finally:
        await client.aclose()


async def _matrix(
    url: str,
    run_id: str,
    plan: Plan,
    loop: str,
    tasks: tuple[int, ...],
    sizes: tuple[int, ...],
    ops: tuple[str, ...],
    progress: Callable[[str], None],
) -> tuple[list[dict[str, Any]], list[str]]:
    made, notes = contenders(url, f"{run_id}-{loop[:2]}")
    out: list[dict[str, Any]] = []
    states = {size: make_state(size) for size in sizes}
    try:
        for contender in made:
            await contender.open()
            # Warm up connections, script caches and code paths.
            warm = states[sizes[0]]
            await asyncio.gather(*(contender.save(f"warm{i}", warm) for i in range(16)))
            await asyncio.gather(*(contender.load(f"warm{i}") for i in range(16)))
        for size in sizes:
            for op in ops:
                for count in tasks:
                    if count * size > plan.max_inflight_bytes:
                        cells = [
                            scenarios.Cell(c.name, loop, op, count, size, note="skipped: memory bound")
                            for c in made
                        ]
                    else:
                        cells = await scenarios.throughput(
                            made,
                            op,
                            count,
                            states[size],
                            size,
                            loop_name=loop,
                            seconds=plan.seconds if size < MiB else plan.big_seconds,
                            rounds=plan.rounds if size < MiB else max(1, plan.rounds // 2),
                            max_ops=plan.max_ops,
                        )
                        await scenarios.delete_prefix(url, f"bench-{run_id}-{loop[:2]}-")
                    for cell in cells:
                        out.append(cell.as_dict())
                        progress(
                            f"{loop} {report.human_size(size)} {op} x{count} {cell.contender}: "
                            f"{cell.ops_per_s:.0f}/s {cell.note}"
                        )
    finally:
        for contender in made:
            await contender.close()
        await scenarios.delete_prefix(url, f"bench-{run_id}-{loop[:2]}-")
    return out, notes


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print the table and write JSON and PNG. Returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller matrix, under a minute")
    parser.add_argument("--redis-url", help="measure against this server instead of a throwaway one")
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="directory for the JSON and PNG files"
    )
    parser.add_argument("--no-uvloop", action="store_true", help="skip the uvloop pass")
    parser.add_argument("--verbose", action="store_true", help="print each cell as it is measured")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    run_id = uuid.uuid4().hex[:8]
    started = time.monotonic()

    def progress(message: str) -> None:
        if args.verbose:
            print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    notes: list[str] = []
    with benchmark_server(args.redis_url) as (url, where):
        version = _run(lambda: _server_version(url), "asyncio")
        results: dict[str, Any] = {
            "mode": plan.mode,
            "plan": asdict(plan),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": describe_machine(),
            "server": f"Redis {version}, {where}",
            "cells": [],
        }
        cells, more = _run(
            lambda: _matrix(url, run_id, plan, "asyncio", plan.tasks, plan.sizes, plan.ops, progress),
            "asyncio",
        )
        results["cells"].extend(cells)
        notes.extend(more)
        if args.no_uvloop:
            notes.append("uvloop pass skipped (--no-uvloop)")
        elif importlib.util.find_spec("uvloop") is None:
            notes.append("uvloop is not installed (pip install -e '.[bench]'): uvloop pass skipped")
        else:
            cells, _ = _run(
                lambda: _matrix(
                    url, run_id, plan, "uvloop", plan.uvloop_tasks, (KiB,), plan.uvloop_ops, progress
                ),
                "uvloop",
            )
            results["cells"].extend(cells)
        progress("event-loop stalls")
        results["stall"] = _run(
            lambda: scenarios.stalls(url, run_id, plan.stall_size, plan.stall_repeats), "asyncio"
        )
        progress("stored bytes per version")
        results["memory"] = _run(
            lambda: scenarios.stored_overhead(
                url, run_id, states=plan.memory_states, saves_per_state=plan.memory_saves
            ),
            "asyncio",
        )
        progress("soak")
        soak = _run(
            lambda: scenarios.soak(
                url, run_id, seconds=plan.soak_seconds, tasks=plan.soak_tasks, states=1000
            ),
            "asyncio",
        )
        results["soak"] = asdict(soak)
        progress("redis-benchmark")
        results["ceiling"] = []
        for size, requests in ((KiB, plan.ceiling_requests), (64 * KiB, plan.ceiling_requests // 10)):
            for pipeline in (1, 16):
                entry = ceiling.run(url, size=size, clients=64, requests=requests, pipeline=pipeline)
                results["ceiling"].append(entry)
                if "skipped" in entry:
                    notes.append(entry["skipped"])
                    break
            if results["ceiling"] and "skipped" in results["ceiling"][-1]:
                break
    results["targets"] = report.targets(results)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "quick" if args.quick else "results"
    chart_note = report.write_chart(results, args.out / f"{stem}.png")
    if chart_note:
        notes.append(chart_note)
    results["notes"] = notes
    report.write_json(results, args.out / f"{stem}.json")
    (args.out / f"{stem}.md").write_text(report.markdown(results))
    print(report.table(results))
    print(f"\nwrote {args.out / (stem + '.json')}" + ("" if chart_note else f" and {stem}.png"))
    print(f"took {results['elapsed_s']} s")
    return 0
