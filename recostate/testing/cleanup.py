"""Deleting what a test stored, on a server the test may share with others."""

from __future__ import annotations

__all__ = ["purge_prefix"]


async def purge_prefix(url: str, key_prefix: str) -> int:
    """Delete every state under ``key_prefix`` on ``url``; return how many there were.

    Only states under that prefix are touched (through the store's own
    listing and delete), so a server shared with other tests or programs
    is left as it was.
    """
    from recostate import RedisStatePersistence

    async with RedisStatePersistence(url, key_prefix=key_prefix) as store:
        ids = await store.list_states()
        for state_id in ids:
            await store.delete(state_id)
    return len(ids)
