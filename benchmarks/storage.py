"""The storage layer's figures: what history costs, what an append sends, what a big load takes.

Four scenarios, each on a throwaway server where only the benchmark runs, so
server-side counters (``INFO``, ``/proc``) see nothing but its own work:

- **history**: states that grow by one ~1.2 KiB agent message a step, saved
  at every step with every version kept, against the same final states saved
  once: server memory (``MEMORY USAGE`` over the prefix's keys, and the
  ``used_memory`` delta) and the ratio.
- **append**: the bytes the server reads (``INFO stats`` ``total_net_input_bytes``)
  when one message is appended to a ~1 MiB state and saved.
- **big load**: one task loading a ~1 MiB agent state, stored whole and, where
  this recostate chunks, chunked.
- **save cost**: server CPU per 1 KiB save (64 tasks) with a TTL at 10 and 100
  kept versions, and without a TTL.

Stores are built with recostate's defaults plus what each scenario sets;
``chunk_threshold`` is passed only when the constructor takes it, so the same
code measures the store before and after chunked storage exists.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from typing import Any

import lz4.block
import msgspec

from benchmarks import scenarios
from benchmarks.impls import (
    NO_TTL,
    Config,
    Contender,
    HandWritten,
    Recostate,
    store_accepts,
    store_default,
)
from benchmarks.server import ServerMeter
from benchmarks.workloads import agent_message, growing_thread, grown_state, make_state
from recostate import RedisStatePersistence


def variants() -> dict[str, dict[str, Any]]:
    """The store options to compare: the default layout, and whole versions where chunking exists."""
    if store_accepts("chunk_threshold"):
        return {"default": {}, "whole": {"chunk_threshold": None}}
    return {"default": {}}


def describe_variants() -> dict[str, str]:
    """What each variant means in this recostate."""
    if store_accepts("chunk_threshold"):
        return {
            "default": f"chunk_threshold={store_default('chunk_threshold')!r} (the default)",
            "whole": "chunk_threshold=None (every version whole)",
        }
    return {"default": "every version whole (this recostate has no chunk_threshold)"}


async def _memory(meter: ServerMeter, prefix: str) -> tuple[int, int]:
    return await scenarios.memory_of_prefix(meter.client(), prefix)


async def _save_history(
    url: str,
    prefix: str,
    threads: list[list[dict[str, Any]]],
    *,
    keep: int,
    final_only: bool,
    options: dict[str, Any],
    meter: ServerMeter,
) -> dict[str, Any]:
    store = RedisStatePersistence(url, key_prefix=prefix, max_versions=keep, **options)
    try:
        await store.connect()
        # Scripts are loaded and the connection made before the baseline.
        await store.save("warm", 0)
        await store.delete("warm")
        before = await meter.used_memory()
        steps = len(threads[0])
        for step in range(steps - 1 if final_only else 0, steps):
            await asyncio.gather(
                *(store.save(f"thread-{i}", states[step]) for i, states in enumerate(threads))
            )
        after = await meter.used_memory()
        usage, keys = await _memory(meter, prefix)
    finally:
        await store.aclose()
        await scenarios.delete_prefix(url, prefix)
    return {"memory_usage_bytes": usage, "used_memory_delta": after - before, "keys": keys}


async def history(
    url: str, run_id: str, meter: ServerMeter, *, states: int, steps: int
) -> dict[str, Any]:
    """Server memory of ``states`` threads saved at each of ``steps`` steps, all versions kept.

    Against the same final states saved once (``max_versions=1``), per variant.
    """
    threads = [growing_thread(1000 + i, steps) for i in range(states)]
    finals = [thread[-1] for thread in threads]
    encoded = [msgspec.msgpack.encode(state) for state in finals]
    out: dict[str, Any] = {
        "states": states,
        "steps": steps,
        "final_state_bytes": round(statistics.mean(len(e) for e in encoded)),
        "final_state_lz4_bytes": round(
            statistics.mean(len(lz4.block.compress(e, store_size=False)) for e in encoded)
        ),
        "variants": {},
    }
    for name, options in variants().items():
        tag = f"bench-{run_id}-h{steps}{name[0]}"
        kept = await _save_history(
            url, f"{tag}a", threads, keep=steps, final_only=False, options=options, meter=meter
        )
        once = await _save_history(
            url, f"{tag}o", threads, keep=1, final_only=True, options=options, meter=meter
        )
        out["variants"][name] = {
            "all_versions": kept,
            "final_once": once,
            "ratio_memory_usage": round(kept["memory_usage_bytes"] / once["memory_usage_bytes"], 2),
            "ratio_used_memory": round(kept["used_memory_delta"] / once["used_memory_delta"], 2)
            if once["used_memory_delta"] > 0
            else None,
        }
    return out


async def append(
    url: str, run_id: str, meter: ServerMeter, *, size: int, appends: int
) -> dict[str, Any]:
    """Bytes the server reads when one ~1.2 KiB message is appended to a ~``size`` state and saved."""
    base = grown_state(7, size)
    rnd = random.Random(99)
    extra = [agent_message(rnd, len(base["messages"]) + i) for i in range(appends)]
    versions = [
        {**base, "step": base["step"] + i, "messages": base["messages"] + extra[:i]}
        for i in range(appends + 1)
    ]
    raw = msgspec.msgpack.encode(versions[-1])
    # Two INFO calls in a row: the second one's own bytes, counted in every delta below.
    first = await meter.net_input_bytes()
    info_bytes = await meter.net_input_bytes() - first

    async def sent(action: Any) -> int:
        before = await meter.net_input_bytes()
        await action()
        return await meter.net_input_bytes() - before - info_bytes

    out: dict[str, Any] = {
        "state_bytes": len(raw),
        "state_lz4_bytes": len(lz4.block.compress(raw, store_size=False)),
        "message_bytes": round(
            statistics.mean(len(msgspec.msgpack.encode(m)) for m in extra)
        ),
        "appends": appends,
        "variants": {},
    }
    for name, options in variants().items():
        prefix = f"bench-{run_id}-ap{name[0]}"
        store = RedisStatePersistence(url, key_prefix=prefix, **options)
        try:
            await store.connect()
            first_save = await sent(lambda store=store: store.save("big", versions[0]))
            each = []
            for state in versions[1:]:
                each.append(
                    await sent(lambda state=state, store=store: store.save("big", state))
                )
        finally:
            await store.aclose()
            await scenarios.delete_prefix(url, prefix)
        out["variants"][name] = {
            "first_save_bytes": first_save,
            "append_bytes": each,
            "append_bytes_median": round(statistics.median(each)),
        }
    hand = HandWritten(url, f"bench-{run_id}-aph", NO_TTL)
    try:
        await hand.open(1)
        await hand.save("big", versions[0])
        each = []
        for state in versions[1:]:
            each.append(await sent(lambda state=state: hand.save("big", state)))
        out["hand_written_append_bytes_median"] = round(statistics.median(each))
    finally:
        await scenarios.delete_prefix(url, hand.prefix)
        await hand.close()
    return out


async def big_load(
    url: str, run_id: str, meter: ServerMeter, *, size: int, seconds: float, rounds: int
) -> dict[str, Any]:
    """One task loading a ~``size`` agent state: each variant, and the hand-written code."""
    state = grown_state(11, size)
    made: list[Contender] = [
        Recostate(url, f"bench-{run_id}-bl{name[0]}", NO_TTL, name=f"recostate ({name})", **options)
        for name, options in variants().items()
    ]
    made.append(HandWritten(url, f"bench-{run_id}-blh", NO_TTL))
    try:
        cells = await scenarios.throughput(
            made,
            "load",
            1,
            state,
            len(msgspec.msgpack.encode(state)),
            meter=meter,
            loop_name="asyncio",
            config=NO_TTL.name,
            seconds=seconds,
            rounds=rounds,
            max_ops=100_000,
        )
    finally:
        for contender in made:
            await contender.close()
        await scenarios.delete_prefix(url, f"bench-{run_id}-bl")
    out: dict[str, Any] = {"cells": [cell.as_dict() for cell in cells]}
    by_name = {cell.contender: cell for cell in cells}
    chunked, whole = by_name.get("recostate (default)"), by_name.get("recostate (whole)")
    if chunked and whole and whole.p50_ms:
        out["default_over_whole_p50"] = round(chunked.p50_ms / whole.p50_ms, 2)
    return out


async def save_cost(
    url: str,
    run_id: str,
    meter: ServerMeter,
    *,
    tasks: int,
    seconds: float,
    rounds: int,
    ttl: int = 3600,
) -> dict[str, Any]:
    """Server and client CPU per 1 KiB save at ``tasks`` tasks: TTL or not, 10 or 100 versions kept.

    Every state is first saved past its retention, so trimming runs at its
    steady state on every timed save.
    """
    configs = [
        Config("ttl, 10 kept", ttl, 10),
        Config("ttl, 100 kept", ttl, 100),
        Config("no ttl, 10 kept", None, 10),
        Config("no ttl, 100 kept", None, 100),
    ]
    state = make_state(1024)
    made = [
        Recostate(url, f"bench-{run_id}-sc{i}", config, name=config.name)
        for i, config in enumerate(configs)
    ]
    keys = [f"k{i}" for i in range(tasks)]
    try:
        for contender, config in zip(made, configs, strict=True):
            await contender.open(tasks)
            for _ in range(config.keep + 2):
                await asyncio.gather(*(contender.save(key, state) for key in keys))
        cells = await scenarios.throughput(
            list(made),
            "save",
            tasks,
            state,
            1024,
            meter=meter,
            loop_name="asyncio",
            config="varies",
            seconds=seconds,
            rounds=rounds,
            max_ops=500_000,
            prefill=False,
        )
    finally:
        for contender in made:
            await contender.close()
        await scenarios.delete_prefix(url, f"bench-{run_id}-sc")
    by_name = {cell.contender: cell for cell in cells}

    def ratio(a: str, b: str) -> float | None:
        top, bottom = by_name[a].server_cpu_us, by_name[b].server_cpu_us
        return round(top / bottom, 2) if bottom else None

    return {
        "tasks": tasks,
        "cells": [cell.as_dict() for cell in cells],
        "ttl_100_over_10": ratio("ttl, 100 kept", "ttl, 10 kept"),
        "ttl_over_no_ttl": ratio("ttl, 10 kept", "no ttl, 10 kept"),
    }


async def run_all(
    url: str,
    run_id: str,
    meter: ServerMeter,
    *,
    history_runs: list[tuple[int, int]],
    append_size: int,
    appends: int,
    load_seconds: float,
    rounds: int,
    cost_tasks: int,
    cost_seconds: float,
    progress: Any,
) -> dict[str, Any]:
    """Every storage scenario on one server."""
    out: dict[str, Any] = {"variants": describe_variants(), "history": []}
    for states, steps in history_runs:
        progress(f"storage: history, {states} states x {steps} versions")
        out["history"].append(await history(url, run_id, meter, states=states, steps=steps))
    progress("storage: append to a big state")
    out["append"] = await append(url, run_id, meter, size=append_size, appends=appends)
    progress("storage: big load")
    out["big_load"] = await big_load(
        url, run_id, meter, size=append_size, seconds=load_seconds, rounds=rounds
    )
    progress("storage: server CPU per save")
    out["save_cost"] = await save_cost(
        url, run_id, meter, tasks=cost_tasks, seconds=cost_seconds, rounds=rounds
    )
    return out
