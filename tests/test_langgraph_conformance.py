"""LangGraph's own conformance suite against the checkpointer, on every server line and a cluster."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "langgraph.checkpoint.conformance",
    reason="needs the langgraph extra and langgraph-checkpoint-conformance (pip install 'recostate[dev]')",
)

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate

from recostate.contrib.langgraph import RecostateSaver
from recostate.sync import RedisStatePersistence as SyncStore
from tests.conftest import ServerHandle
from tests.langgraph_support import (
    assert_full_conformance,
    run_conformance,
    valkey_server,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


async def test_every_capability_passes(
    redis_server: ServerHandle, key_prefix: str, raw_redis: object
) -> None:
    # Once per server binary found (Redis 7.0, 6.2) and on the 3-primary cluster;
    # raw_redis deletes the keys afterwards.
    report = await run_conformance(redis_server.url, key_prefix, **redis_server.options)
    assert_full_conformance(report)


async def test_every_capability_passes_on_valkey(key_prefix: str) -> None:
    with valkey_server() as server:
        report = await run_conformance(server.url, key_prefix)
    assert_full_conformance(report)


async def test_blocking_twin_passes_through_its_own_loop(
    redis_server: ServerHandle, key_prefix: str, raw_redis: object
) -> None:
    # RecostateSaver's async methods hand the work to its store's loop thread.
    if redis_server.cluster is not None:
        pytest.skip("the twin shares the async core; once on a single server is enough")

    async def factory():  # type: ignore[no-untyped-def]
        with SyncStore(redis_server.url, key_prefix=key_prefix) as store:
            saver: BaseCheckpointSaver[str] = RecostateSaver(store)
            yield saver

    registered = checkpointer_test(name=f"recostate-sync-{key_prefix}")(factory)
    assert_full_conformance(await validate(registered))
