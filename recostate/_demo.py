"""The demo: the main job of recostate in a minute, on a throwaway server by default."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator

from recostate._persistence import RedisStatePersistence
from recostate.testing import EmbeddedRedis

__all__ = ["run_demo"]


@contextlib.contextmanager
def _server(url: str | None, say: Callable[[str], None]) -> Iterator[str]:
    if url:
        say(f"Using the Redis server at {url} (keys under 'recostate-demo').")
        yield url
        return
    with EmbeddedRedis() as server:
        say(f"Started a throwaway redis-server on {server.url} (binary: {server.binary}).")
        yield server.url


async def _tour(url: str, say: Callable[[str], None]) -> None:
    async with RedisStatePersistence(url, key_prefix="recostate-demo", max_versions=5) as store:
        await store.delete("agent-7")
        meta = await store.save(
            "agent-7", {"step": 1, "plan": ["search", "answer"]}, tags=["agents"]
        )
        say(
            f"saved version {meta.version}: {meta.size_bytes} bytes encoded, "
            f"{meta.stored_bytes} stored, {meta.compression_type.value}, {meta.checksum}"
        )
        for step in (2, 3):
            meta = await store.save(
                "agent-7",
                {"step": step, "plan": ["answer"]},
                tags=["agents"],
                expected_version=meta.version,
            )
            say(f"saved version {meta.version} with compare-and-set")
        say(f"head now: {await store.load('agent-7')}")
        say(
            "versions: "
            + ", ".join(
                f"v{m.version} at {m.updated_at:%H:%M:%S.%f}"[:-3]
                for m in await store.list_versions("agent-7")
            )
        )
        meta = await store.rollback("agent-7", 1)
        say(
            f"rolled back: version {meta.version} restores version {meta.rolled_back_from}: "
            f"{await store.load('agent-7')}"
        )
        say(f"states tagged 'agents': {await store.list_states(tag='agents')}")
        big = {"log": ["the same line, again and again"] * 5000}
        meta = await store.save("agent-7", big)
        say(
            f"a bigger state: {meta.size_bytes} bytes encoded, {meta.stored_bytes} stored "
            f"({meta.compression_type.value})"
        )
        meta = await store.save("session-42", {"user": "ada"}, ttl=1)
        say(f"session-42 expires in {meta.ttl}s; exists: {await store.exists('session-42')}")
        await asyncio.sleep(1.2)
        say(f"a moment later, exists: {await store.exists('session-42')}")
        stats = await store.get_stats()
        say(
            f"this store: {stats['store']['saves']} saves, {stats['store']['loads']} loads, "
            f"compression ratio {stats['store']['compression_ratio']:.1f}; "
            f"Redis {stats['redis_info']['redis_version']} uses {stats['redis_info']['used_memory']} bytes"
        )
        await store.delete("agent-7")


def run_demo(url: str | None = None, say: Callable[[str], None] = print) -> None:
    """Run the demo against ``url`` (default: ``REDIS_URL``, else a throwaway redis-server)."""
    with _server(url or os.environ.get("REDIS_URL"), say) as target:
        asyncio.run(_tour(target, say))
    say("Done.")
