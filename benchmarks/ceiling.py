"""The server's own ceiling: ``redis-benchmark`` SET/GET of the same payload size."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from typing import Any
from urllib.parse import urlsplit

DEFAULT_BINARY = "/usr/bin/redis-benchmark"


def find_binary() -> str | None:
    """Return ``/usr/bin/redis-benchmark`` if present, else one on ``PATH``, else ``None``."""
    if os.access(DEFAULT_BINARY, os.X_OK):
        return DEFAULT_BINARY
    return shutil.which("redis-benchmark")


def bench_command(
    url: str, argv: list[bytes], *, clients: int, requests: int, pipeline: int, random_keys: int = 0
) -> tuple[float, float | None] | str:
    """Send one command ``requests`` times; return (requests/s, p50 ms), or why it failed.

    With ``random_keys``, ``__rand_int__`` in an argument takes that many values.
    """
    binary = find_binary()
    if binary is None:
        return "redis-benchmark not found (/usr/bin/redis-benchmark or PATH)"
    parts = urlsplit(url)
    command = [
        binary,
        "-h",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 6379),
        "-c",
        str(clients),
        "-n",
        str(requests),
        "-P",
        str(pipeline),
        "--csv",
    ]
    if random_keys:
        command += ["-r", str(random_keys)]
    if parts.password:
        command += ["-a", parts.password]
    if parts.path and parts.path.strip("/"):
        command += ["--dbnum", parts.path.strip("/")]
    command += [arg.decode("latin-1") for arg in argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        return f"redis-benchmark failed: {done.stderr.strip()[:200]}"
    for row in csv.reader(io.StringIO(done.stdout)):
        if len(row) >= 2 and row[0] != "test":
            try:
                rate = float(row[1])
            except ValueError:
                continue
            p50 = float(row[4]) if len(row) >= 5 else None
            return rate, p50
    return f"redis-benchmark gave no figures: {done.stdout.strip()[:200]}"


def run(
    url: str, *, prefix: str, size: int, clients: int, requests: int, pipeline: int
) -> dict[str, Any]:
    """Run SET and GET of ``size`` bytes once; return requests per second (and p50 ms) for each.

    Keys are ``<prefix>:<0..999>``, so the caller can delete them afterwards
    (``redis-benchmark -t set,get`` would write its own ``key:*`` names).
    """
    key = f"{prefix}:__rand_int__".encode()
    out: dict[str, Any] = {"size": size, "clients": clients, "pipeline": pipeline}
    for name, argv in (("set", [b"SET", key, b"x" * size]), ("get", [b"GET", key])):
        found = bench_command(
            url, argv, clients=clients, requests=requests, pipeline=pipeline, random_keys=1000
        )
        if isinstance(found, str):
            return {"skipped": found}
        out[f"{name}_per_s"], p50 = found
        if p50 is not None:
            out[f"{name}_p50_ms"] = p50
    return out
