"""The README's async quick start as a runnable script: `python examples/quickstart.py`.

Uses ``REDIS_URL`` when set, else a throwaway redis-server.
"""

from __future__ import annotations

import asyncio
import os

from recostate import RedisStatePersistence, VersionConflictError
from recostate.testing import EmbeddedRedis


async def tour(url: str) -> None:
    async with RedisStatePersistence(url, key_prefix="recostate-example") as store:
        meta = await store.save("agent-7", {"step": 1}, tags=["agents"])
        await store.save("agent-7", {"step": 2}, expected_version=meta.version)
        try:
            await store.save("agent-7", {"step": 3}, expected_version=meta.version)
        except VersionConflictError as exc:
            print(f"conflict: expected {exc.expected}, head is {exc.actual}")
        print("head:", await store.load("agent-7"))
        print("versions:", [m.version for m in await store.list_versions("agent-7")])
        await store.rollback("agent-7", 1)
        print("after rollback:", await store.load("agent-7"))
        await store.delete("agent-7")


def main() -> None:
    url = os.environ.get("REDIS_URL")
    if url:
        asyncio.run(tour(url))
        return
    with EmbeddedRedis() as server:
        asyncio.run(tour(server.url))


if __name__ == "__main__":
    main()
