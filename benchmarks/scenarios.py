"""The measurements: throughput and latency, event-loop stalls, stored bytes, a soak.

Every function here runs inside an event loop against contenders that are
already open; the orchestration lives in ``benchmarks.cli``.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import random
import statistics
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import lz4.block
import msgspec
import redis.asyncio as aioredis

from benchmarks.impls import NO_TTL, SEED, Config, Contender, HandWritten
from benchmarks.server import ServerMeter
from benchmarks.workloads import make_state
from recostate import CompressionType, RedisStatePersistence

OPS = ("save", "load", "mix")


@dataclass
class Cell:
    """One throughput measurement: a contender, an operation, a concurrency, a size."""

    contender: str
    loop: str
    op: str
    tasks: int
    size: int
    config: str = "seed"
    ops: int = 0
    seconds: float = 0.0
    ops_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    client_cpu_us: float = 0.0
    server_cpu_us: float = 0.0
    errors: int = 0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the cell as plain JSON values."""
        return asdict(self)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value at ``fraction`` (0 to 1) of an ascending list (nearest rank); 0 when empty."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    client_cpu: float = 0.0
    server_cpu_ns: int = 0
    errors: int = 0


async def _timed_round(
    contender: Contender,
    op: str,
    keys: list[str],
    tasks: int,
    state: Any,
    seconds: float,
    max_ops: int,
    tally: _Tally,
    seed: int,
    meter: ServerMeter,
) -> None:
    async def one(rnd: random.Random, key: str) -> None:
        if op == "save" or (op == "mix" and rnd.random() < 0.2):
            await contender.save(key, state)
        else:
            await contender.load(key)

    rnds = [random.Random(seed * 1000 + i) for i in range(tasks)]
    if seed == 0:
        # One untimed call per worker first: connections are opened and
        # scripts loaded before the clock starts; rounds measure the steady state.
        warm = await asyncio.gather(
            *(one(rnds[i], keys[i % len(keys)]) for i in range(tasks)), return_exceptions=True
        )
        tally.errors += sum(isinstance(result, Exception) for result in warm)
    budget = itertools.count()
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        rnd = rnds[index]
        key = keys[index % len(keys)]
        while time.perf_counter() < deadline and next(budget) < max_ops:
            started = time.perf_counter()
            try:
                await one(rnd, key)
            except Exception:
                tally.errors += 1
                continue
            tally.latencies.append(time.perf_counter() - started)

    server_before = await meter.cpu_ns()
    cpu_before = time.process_time()
    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    tally.elapsed += time.perf_counter() - began
    tally.client_cpu += time.process_time() - cpu_before
    tally.server_cpu_ns += await meter.cpu_ns() - server_before


async def throughput(
    contenders: list[Contender],
    op: str,
    tasks: int,
    state: Any,
    size: int,
    *,
    meter: ServerMeter,
    loop_name: str,
    config: str,
    seconds: float,
    rounds: int,
    max_ops: int,
    prefill: bool = True,
) -> list[Cell]:
    """Run ``tasks`` workers doing ``op``, for ``seconds`` per contender in all.

    The time is split into ``rounds`` rounds that take the contenders in
    turn (reversing the order every other round), so a change in the
    machine's background load during the cell falls on all of them alike.
    Each worker uses its own key. Each round also records the CPU time this
    process spent (``time.process_time()``: the event loop and any worker
    threads) and the server's (``meter``), so each cell says where an
    operation's time went. ``prefill=False`` leaves the keys as they are.
    """
    keys = [f"k{i}" for i in range(tasks)]
    for contender in contenders:
        await contender.open(tasks)
    if prefill and op in ("load", "mix"):
        for contender in contenders:
            for start in range(0, len(keys), 64):
                await asyncio.gather(*(contender.save(k, state) for k in keys[start : start + 64]))
    tallies = {contender.name: _Tally() for contender in contenders}
    for number in range(rounds):
        order = contenders if number % 2 == 0 else contenders[::-1]
        for contender in order:
            await _timed_round(
                contender,
                op,
                keys,
                tasks,
                state,
                seconds / rounds,
                max_ops // rounds,
                tallies[contender.name],
                number,
                meter,
            )
    cells = []
    for contender in contenders:
        tally = tallies[contender.name]
        latencies = sorted(tally.latencies)
        done = max(len(latencies), 1)
        cells.append(
            Cell(
                contender=contender.name,
                loop=loop_name,
                op=op,
                tasks=tasks,
                size=size,
                config=config,
                ops=len(latencies),
                seconds=round(tally.elapsed, 3),
                ops_per_s=round(len(latencies) / tally.elapsed, 1) if tally.elapsed else 0.0,
                p50_ms=round(percentile(latencies, 0.5) * 1000, 3),
                p99_ms=round(percentile(latencies, 0.99) * 1000, 3),
                client_cpu_us=round(tally.client_cpu * 1e6 / done, 1),
                server_cpu_us=round(tally.server_cpu_ns / 1000 / done, 1),
                errors=tally.errors,
            )
        )
    return cells


# -- event-loop stalls ----------------------------------------------------------------


class _Ticker:
    """A task that sleeps 1 ms at a time and records how late it wakes."""

    def __init__(self) -> None:
        self.running = True
        self.worst = 0.0

    async def run(self) -> None:
        last = time.perf_counter()
        while self.running:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last - 0.001)
            last = now


async def longest_stall(action: Callable[[], Awaitable[Any]], repeats: int) -> float:
    """Return the median, over ``repeats`` runs of ``action``, of the longest loop stall (ms).

    A stall is how late a task that sleeps 1 ms at a time wakes up.
    """
    worst_per_run: list[float] = []
    for _ in range(repeats):
        # Garbage left by earlier steps is collected first, so a collection it
        # would trigger does not land inside one contender's measurement.
        gc.collect()
        ticker = _Ticker()
        tick = asyncio.create_task(ticker.run())
        await asyncio.sleep(0.01)
        ticker.worst = 0.0
        await action()
        await asyncio.sleep(0.005)
        ticker.running = False
        await tick
        worst_per_run.append(ticker.worst * 1000)
    return round(statistics.median(worst_per_run), 2)


async def stalls(
    url: str, run_id: str, size: int, repeats: int, config: Config = SEED
) -> dict[str, Any]:
    """Longest loop stall while a big state is saved and loaded, against the codec run inline."""
    state = make_state(size, seed=11)
    encoder = msgspec.msgpack.Encoder()
    decoder = msgspec.msgpack.Decoder()
    raw = encoder.encode(state)
    packed = lz4.block.compress(raw, store_size=False)
    crc = zlib.crc32(packed)

    async def inline_encode() -> None:
        body = lz4.block.compress(encoder.encode(state), store_size=False)
        zlib.crc32(body)

    async def inline_decode() -> None:
        if zlib.crc32(packed) != crc:
            raise ValueError("checksum mismatch")
        decoder.decode(lz4.block.decompress(packed, uncompressed_size=len(raw)))

    async def msgspec_only() -> None:
        encoder.encode(state)

    store = RedisStatePersistence(
        url,
        key_prefix=f"bench-{run_id}-stall",
        default_ttl=config.ttl,
        max_versions=config.keep,
    )
    hand = HandWritten(url, f"bench-{run_id}-stall-hw", config)
    try:
        await store.connect()
        await hand.open(1)
        await store.save("big", state)
        await hand.save("big", state)
        out = {
            "state_bytes": len(raw),
            "stored_bytes_lz4": len(packed),
            "inline_codec_save_ms": await longest_stall(inline_encode, repeats),
            "inline_codec_load_ms": await longest_stall(inline_decode, repeats),
            "msgspec_encode_only_ms": await longest_stall(msgspec_only, repeats),
            "recostate_save_ms": await longest_stall(lambda: store.save("big", state), repeats),
            "recostate_load_ms": await longest_stall(lambda: store.load("big"), repeats),
            "hand_written_save_ms": await longest_stall(lambda: hand.save("big", state), repeats),
            "hand_written_load_ms": await longest_stall(lambda: hand.load("big"), repeats),
        }
    finally:
        await store.delete("big")
        await store.aclose()
        await _delete_prefix(hand.client, hand.prefix)
        await hand.close()
    out["save_ratio"] = round(out["recostate_save_ms"] / max(out["inline_codec_save_ms"], 1e-9), 3)
    out["load_ratio"] = round(out["recostate_load_ms"] / max(out["inline_codec_load_ms"], 1e-9), 3)
    return out


# -- bytes stored per version ---------------------------------------------------------


async def _delete_prefix(client: aioredis.Redis, prefix: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += await client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += await client.unlink(*batch)
    return deleted


async def delete_prefix(url: str, prefix: str) -> int:
    """Delete every key starting with ``prefix`` (SCAN and UNLINK; never a flush)."""
    client = aioredis.Redis.from_url(url)
    try:
        return await _delete_prefix(client, prefix)
    finally:
        await client.aclose()


async def memory_of_prefix(client: aioredis.Redis, prefix: str) -> tuple[int, int]:
    """Return ``MEMORY USAGE`` (exact: ``SAMPLES 0``) summed over the keys under ``prefix``, and their count."""
    total = 0
    count = 0
    async for key in client.scan_iter(match=f"{prefix}*", count=1000):
        usage = await client.memory_usage(key, samples=0)
        total += int(usage or 0)
        count += 1
    return total, count


def _payload(body: Any, compression: CompressionType) -> bytes:
    raw = msgspec.msgpack.encode(body)
    if compression is CompressionType.LZ4:
        return bytes(lz4.block.compress(raw, store_size=False))
    if compression is CompressionType.ZLIB:
        return zlib.compress(raw, 6)
    return raw


async def _bare_value_cost(
    client: aioredis.Redis, prefix: str, payloads: list[bytes]
) -> float:
    """What Redis itself charges per value beyond its bytes: a SET under a short key."""
    for i, payload in enumerate(payloads):
        await client.set(f"{prefix}:{i}", payload)
    total, _ = await memory_of_prefix(client, prefix)
    await _delete_prefix(client, prefix)
    return (total - sum(len(p) for p in payloads)) / len(payloads)


async def stored_overhead(
    url: str, run_id: str, *, states: int, saves_per_state: int
) -> dict[str, Any]:
    """Bytes Redis holds per stored version beyond the compressed payload (``MEMORY USAGE``).

    States of 1-4 KiB (so allocator size classes average out) are saved
    ``saves_per_state`` times each, past the retention of 10 versions, so
    trimming and write-id memory are at their steady state. Two figures per
    codec: ``overhead_per_version``, everything beyond the payload bytes
    (key names, Redis's per-key structures, allocator rounding, the frame
    header, the state's hash, version index and write ids, per version); and
    ``added_per_version``, that minus what Redis charges for the same payloads
    stored as bare SETs, which any store pays.
    """
    client = aioredis.Redis.from_url(url)
    sizes = [1024 + (i * 3072) // max(states - 1, 1) for i in range(states)]
    bodies = [make_state(size, seed=100 + i) for i, size in enumerate(sizes)]
    out: dict[str, Any] = {"states": states, "saves_per_state": saves_per_state}
    try:
        for compression in (CompressionType.LZ4, CompressionType.ZLIB, CompressionType.NONE):
            # As long as the default key_prefix ("recostate"): key names count.
            prefix = f"bm{run_id[:6]}{compression.value[0]}"
            store = RedisStatePersistence(url, key_prefix=prefix, compression_type=compression)
            payload = 0
            versions = 0
            stored_payloads: list[bytes] = []
            try:
                for i, body in enumerate(bodies):
                    meta = None
                    for _ in range(saves_per_state):
                        meta = await store.save(f"state-{i}", body)
                    assert meta is not None
                    kept = await store.list_versions(f"state-{i}")
                    versions += len(kept)
                    # The frame header is part of the overhead; the payload is not.
                    body_bytes = _payload(body, meta.compression_type)
                    stored_payloads.append(body_bytes)
                    payload += len(body_bytes) * len(kept)
                total, keys = await memory_of_prefix(client, prefix)
            finally:
                await store.aclose()
                await _delete_prefix(client, prefix)
            gross = (total - payload) / versions
            bare = await _bare_value_cost(client, f"bb{run_id[:6]}", stored_payloads)
            out[compression.value] = {
                "versions": versions,
                "keys": keys,
                "memory_usage_bytes": total,
                "payload_bytes": payload,
                "overhead_per_version": round(gross, 1),
                "redis_value_cost": round(bare, 1),
                "added_per_version": round(gross - bare, 1),
            }
        # The hand-written code, versions and metadata included, with the
        # same settings as the stores above (recostate's defaults: no TTL).
        hand = HandWritten(url, f"bh{run_id[:6]}x", NO_TTL)
        await hand.open(1)
        payload = 0
        versions = 0
        packed_all: list[bytes] = []
        for i, body in enumerate(bodies):
            for _ in range(saves_per_state):
                await hand.save(f"state-{i}", body)
            packed = _payload(body, CompressionType.LZ4)
            packed_all.append(packed)
            stored = min(saves_per_state, hand.keep)
            payload += len(packed) * stored
            versions += stored
        total, _ = await memory_of_prefix(client, hand.prefix)
        await _delete_prefix(client, hand.prefix)
        await hand.close()
        gross = (total - payload) / versions
        bare = await _bare_value_cost(client, f"bb{run_id[:6]}", packed_all)
        out["hand_written_lz4"] = {
            "versions": versions,
            "overhead_per_version": round(gross, 1),
            "redis_value_cost": round(bare, 1),
            "added_per_version": round(gross - bare, 1),
        }
    finally:
        await client.aclose()
    return out


# -- soak -----------------------------------------------------------------------------


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # not Linux: report what is left after a collection
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


@dataclass
class Soak:
    """In-process memory over a bounded run of mixed load."""

    seconds: float
    tasks: int
    operations: int = 0
    errors: int = 0
    samples_mib: list[float] = field(default_factory=list)
    gc_objects: list[int] = field(default_factory=list)
    growth_mib: float = 0.0
    flat: bool = False


async def soak(
    url: str, run_id: str, *, seconds: float, tasks: int, states: int, config: Config = SEED
) -> Soak:
    """Run an 80/20 load/save mix on ``states`` ids; sample RSS and live objects.

    Memory counts as flat when the last sample is within 5% (and 8 MiB) of the
    sample taken after the first fifth of the run, once warm.
    """
    store = RedisStatePersistence(
        url, key_prefix=f"bench-{run_id}-soak", default_ttl=config.ttl, max_versions=config.keep
    )
    bodies = [make_state(512 + 256 * (i % 8), seed=i) for i in range(16)]
    result = Soak(seconds=seconds, tasks=tasks)
    deadline = time.perf_counter() + seconds
    try:
        await store.connect()

        async def worker(index: int) -> None:
            rnd = random.Random(index)
            while time.perf_counter() < deadline:
                state_id = f"state-{rnd.randrange(states)}"
                try:
                    if rnd.random() < 0.2:
                        await store.save(state_id, bodies[rnd.randrange(len(bodies))])
                    else:
                        await store.load(state_id)
                except Exception:
                    result.errors += 1
                result.operations += 1

        async def sampler() -> None:
            interval = seconds / 10
            while time.perf_counter() < deadline:
                await asyncio.sleep(interval)
                gc.collect()
                result.samples_mib.append(round(_rss_bytes() / 2**20, 2))
                result.gc_objects.append(len(gc.get_objects()))

        await asyncio.gather(sampler(), *(worker(i) for i in range(tasks)))
    finally:
        await store.aclose()
        await delete_prefix(url, f"bench-{run_id}-soak")
    if len(result.samples_mib) >= 3:
        base = result.samples_mib[max(1, len(result.samples_mib) // 5)]
        result.growth_mib = round(result.samples_mib[-1] - base, 2)
        result.flat = result.growth_mib <= max(8.0, base * 0.05)
    return result
