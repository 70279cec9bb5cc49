"""What single commands cost a server by themselves, with no Python client in the way.

``redis-benchmark`` (a C client) sends one command many times from 64
connections while the server's CPU time is read from ``/proc``; server µs per
command, for:

- ``GET`` of a 1 KiB value: the floor of any read;
- ``LINDEX key 0``: the hand-written code's load;
- ``EVALSHA`` of ``return 1``: what calling a Lua script costs;
- ``EVALSHA`` of ``return redis.call('GET', KEYS[1])``: a script around one read;
- the command(s) recostate sends for one load, captured with ``MONITOR`` and
  replayed as they are, so the probe follows whatever recostate sends.

Each runs without pipelining (``-P 1``: one request per read and write on
each connection, as the hand-written code's loads arrive) and with 16 in a
batch (``-P 16``: how recostate's automatic pipelining delivers concurrent
calls), so the per-request network cost and the command's own cost can be
told apart.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from benchmarks import ceiling, scenarios
from benchmarks.impls import SEED, HandWritten, Recostate
from benchmarks.server import ServerMeter
from benchmarks.workloads import make_state

NOOP = "return 1"
GET_SCRIPT = "return redis.call('GET', KEYS[1])"
_ADMIN = {b"CONFIG", b"INFO", b"PING", b"CLIENT", b"HELLO", b"SCRIPT", b"ECHO"}


async def _bench(
    url: str, argv: list[bytes], *, clients: int, requests: int, pipeline: int
) -> float | None:
    found = await asyncio.to_thread(
        ceiling.bench_command, url, argv, clients=clients, requests=requests, pipeline=pipeline
    )
    return None if isinstance(found, str) else found[0]


_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b", '"': b'"', "\\": b"\\"}


def parse_monitor_line(line: str) -> tuple[str, list[bytes]] | None:
    """Split one ``MONITOR`` line into the client it came from and the command's arguments.

    ``1700000000.123456 [0 127.0.0.1:5000] "GET" "k\\x00"``: the client is
    ``lua`` for commands a script ran.
    """
    if "[" not in line or "]" not in line:
        return None
    head, _, rest = line.partition("] ")
    client = head.rpartition(" ")[2]
    args: list[bytes] = []
    i = 0
    while i < len(rest):
        if rest[i] != '"':
            i += 1
            continue
        i += 1
        arg = bytearray()
        while i < len(rest) and rest[i] != '"':
            if rest[i] == "\\" and i + 1 < len(rest):
                code = rest[i + 1]
                if code == "x":
                    arg.append(int(rest[i + 2 : i + 4], 16))
                    i += 4
                    continue
                arg += _ESCAPES.get(code, code.encode("latin-1"))
                i += 2
                continue
            arg += rest[i].encode("latin-1")
            i += 1
        args.append(bytes(arg))
        i += 1
    return client, args


async def _capture_load(url: str, store: Recostate, key: str) -> list[list[bytes]]:
    """The commands one recostate load sends, as the server received them (``MONITOR``).

    Commands that a script runs (``lua`` in the monitor's output) are left
    out: they are part of the script's cost.
    """
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 6379)
    marker = b"recostate-bench-probe-end"
    commands: list[list[bytes]] = []
    try:
        writer.write(b"MONITOR\r\n")
        await writer.drain()
        await reader.readline()  # +OK
        await store.load(key)
        marker_client = aioredis.Redis.from_url(url)
        try:
            await marker_client.echo(marker)
        finally:
            await marker_client.aclose()
        while True:
            raw = await asyncio.wait_for(reader.readline(), timeout=10)
            parsed = parse_monitor_line(raw.decode("latin-1").rstrip("\r\n").lstrip("+"))
            if parsed is None:
                continue
            source, argv = parsed
            if argv and argv[0].upper() == b"ECHO" and argv[-1] == marker:
                break
            if source != "lua" and argv and argv[0].upper() not in _ADMIN:
                commands.append(argv)
    finally:
        writer.close()
        await writer.wait_closed()
    return commands


async def command_costs(
    url: str, run_id: str, meter: ServerMeter, *, requests: int, clients: int = 64
) -> dict[str, Any]:
    """Server µs and requests/s per command, for the probes above, at ``-P 1`` and ``-P 16``."""
    if ceiling.find_binary() is None:
        return {"skipped": "redis-benchmark not found (/usr/bin/redis-benchmark or PATH)"}
    client = meter.client()
    prefix = f"bench-{run_id}-probe"
    state = make_state(1024)
    store = Recostate(url, f"{prefix}-rs", SEED)
    hand = HandWritten(url, f"{prefix}-hw", SEED)
    out: dict[str, Any] = {"clients": clients, "requests": requests, "commands": {}, "notes": []}
    try:
        await store.open(1)
        await hand.open(1)
        await store.save("s", state)
        await hand.save("s", state)
        value_key = f"{prefix}-get".encode()
        await client.set(value_key, b"x" * 1024)
        noop = (await client.script_load(NOOP)).encode()
        get_sha = (await client.script_load(GET_SCRIPT)).encode()
        await store.load("s")  # scripts loaded before the capture
        captured = await _capture_load(url, store, "s")
        probes: dict[str, list[list[bytes]]] = {
            "GET 1 KiB": [[b"GET", value_key]],
            "hand-written load (LINDEX)": [[b"LINDEX", f"{hand.prefix}:s:v".encode(), b"0"]],
            "EVALSHA return 1": [[b"EVALSHA", noop, b"0"]],
            "EVALSHA around one GET": [[b"EVALSHA", get_sha, b"1", value_key]],
        }
        if captured:
            probes["recostate load"] = captured
            out["recostate_load_commands"] = [
                [arg.decode("latin-1") for arg in argv] for argv in captured
            ]
        for name, commands in probes.items():
            entry: dict[str, Any] = {}
            for pipeline in (1, 16):
                cpu_us = 0.0
                rates = []
                for argv in commands:
                    before = await meter.cpu_ns()
                    rate = await _bench(
                        url, argv, clients=clients, requests=requests, pipeline=pipeline
                    )
                    spent = await meter.cpu_ns() - before
                    if rate is None:
                        entry[f"P{pipeline}"] = None
                        break
                    cpu_us += spent / 1000 / requests
                    rates.append(rate)
                else:
                    entry[f"P{pipeline}"] = {
                        "server_cpu_us": round(cpu_us, 2),
                        "requests_per_s": round(min(rates)),
                    }
            out["commands"][name] = entry
    finally:
        await store.close()
        await scenarios.delete_prefix(url, prefix)
        await hand.close()
    return out
