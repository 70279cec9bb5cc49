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


def run(url: str, *, size: int, clients: int, requests: int, pipeline: int) -> dict[str, Any]:
    """Run SET and GET once; return requests per second (and p50 ms) for each."""
    binary = find_binary()
    if binary is None:
        return {"skipped": "redis-benchmark not found (/usr/bin/redis-benchmark or PATH)"}
    parts = urlsplit(url)
    command = [
        binary,
        "-h",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 6379),
        "-t",
        "set,get",
        "-d",
        str(size),
        "-c",
        str(clients),
        "-n",
        str(requests),
        "-P",
        str(pipeline),
        "-r",
        "1000",
        "--csv",
    ]
    if parts.password:
        command += ["-a", parts.password]
    if parts.path and parts.path.strip("/"):
        command += ["--dbnum", parts.path.strip("/")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        return {"skipped": f"redis-benchmark failed: {done.stderr.strip()[:200]}"}
    out: dict[str, Any] = {"size": size, "clients": clients, "pipeline": pipeline}
    for row in csv.reader(io.StringIO(done.stdout)):
        if len(row) >= 2 and row[0] in ("SET", "GET"):
            out[row[0].lower() + "_per_s"] = float(row[1])
            if len(row) >= 5:
                out[row[0].lower() + "_p50_ms"] = float(row[4])
    return out
