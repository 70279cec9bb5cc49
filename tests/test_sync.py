"""The blocking facade runs the async core on its own loop: same calls, same errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import msgspec
import pytest

from recostate import InvalidInputError, StoreClosedError, VersionConflictError
from recostate.sync import RedisStatePersistence
from tests.conftest import ServerHandle


class Note(msgspec.Struct):
    text: str


@pytest.fixture
def sync_store(redis_server: ServerHandle, key_prefix: str) -> Iterator[RedisStatePersistence]:
    with RedisStatePersistence(
        redis_server.url, key_prefix=key_prefix, max_versions=5, **redis_server.options
    ) as store:
        yield store
        for state_id in store.list_states():
            store.delete(state_id)


def test_sync_quick_start(sync_store: RedisStatePersistence) -> None:
    meta = sync_store.save("agent-7", {"step": 1}, tags=["agents"])
    assert meta.version == 1
    assert sync_store.load("agent-7") == {"step": 1}
    sync_store.save("agent-7", {"step": 2}, expected_version=1)
    with pytest.raises(VersionConflictError):
        sync_store.save("agent-7", {"step": 3}, expected_version=1)
    assert [m.version for m in sync_store.list_versions("agent-7")] == [1, 2]
    assert sync_store.rollback("agent-7", 1).rolled_back_from == 1
    assert sync_store.load("agent-7") == {"step": 1}
    assert sync_store.list_states(tag="agents") == ["agent-7"]
    assert list(sync_store.iter_states()) == ["agent-7"]
    assert sync_store.get_metadata("agent-7", 2) is not None
    assert sync_store.touch("agent-7", 60) is True
    assert sync_store.prune("agent-7", 1) == 2
    assert sync_store.delete_version("agent-7", 3) is True
    assert sync_store.exists("agent-7") is False
    assert sync_store.get_stats()["store"]["saves"] == 3


def test_sync_typed_load_and_long_form(sync_store: RedisStatePersistence) -> None:
    sync_store.save_with_metadata(Note("hi"), "n")
    assert sync_store.load("n", type=Note) == Note("hi")
    found = sync_store.load_with_metadata("n", type=Note)
    assert found is not None and found[0] == Note("hi") and found[1].version == 1
    assert sync_store.delete("n") is True


def test_sync_errors_are_the_async_errors(sync_store: RedisStatePersistence) -> None:
    with pytest.raises(InvalidInputError):
        sync_store.save("", 1)
    with pytest.raises(InvalidInputError):
        list(sync_store.iter_states(tag=""))


def test_sync_is_usable_from_many_threads(sync_store: RedisStatePersistence) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                sync_store.save(f"t{n}", i)
            assert sync_store.load(f"t{n}") == 9
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(sync_store.list_states()) == 8


def test_sync_close_then_use_raises(redis_server: ServerHandle, key_prefix: str) -> None:
    store = RedisStatePersistence(redis_server.url, key_prefix=key_prefix, **redis_server.options)
    store.save("s", 1)
    store.delete("s")
    store.close()
    store.close()
    assert store.closed
    with pytest.raises(StoreClosedError):
        store.load("s")


def test_sync_shares_the_async_core() -> None:
    from recostate import RedisStatePersistence as AsyncStore

    store = RedisStatePersistence("redis://127.0.0.1:1/0")
    assert isinstance(store.async_store, AsyncStore)
    store.close()


def test_sync_api_mirrors_the_async_api() -> None:
    import inspect

    from recostate import RedisStatePersistence as AsyncStore

    public = {
        name
        for name, member in inspect.getmembers(AsyncStore)
        if not name.startswith("_") and callable(member) and name not in {"aclose"}
    }
    for name in public:
        assert hasattr(RedisStatePersistence, name), name
        if name in {"connect"}:
            continue
        async_params = list(inspect.signature(getattr(AsyncStore, name)).parameters.values())
        sync_params = list(
            inspect.signature(getattr(RedisStatePersistence, name)).parameters.values()
        )
        assert [(p.name, p.kind, p.default) for p in async_params] == [
            (p.name, p.kind, p.default) for p in sync_params
        ], name
    assert hasattr(RedisStatePersistence, "close")
    assert hasattr(RedisStatePersistence, "__enter__") and hasattr(
        RedisStatePersistence, "__exit__"
    )
