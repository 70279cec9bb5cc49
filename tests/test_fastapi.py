"""recostate.contrib.fastapi and examples/fastapi_app.py, in-process over httpx against real Redis."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from recostate import RedisStatePersistence, StoreUnavailableError
from recostate._server import EmbeddedRedis
from recostate.contrib.fastapi import (
    Store,
    add_exception_handlers,
    etag,
    parse_etag,
    recostate_lifespan,
)
from tests.layout import aget_version, aset_version


def _load_example() -> Any:
    path = Path(__file__).parent.parent / "examples" / "fastapi_app.py"
    spec = importlib.util.spec_from_file_location("fastapi_app_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


create_app = _load_example().create_app


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as embedded:
        yield embedded


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # httpx's ASGI transport sends no lifespan events: run the lifespan here.
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


@pytest.fixture
async def client(server: EmbeddedRedis) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(server.url)) as http:
        yield http
    async with RedisStatePersistence(server.url, key_prefix="docs-app") as store:
        for state_id in await store.list_states():
            await store.delete(state_id)


async def test_create_read_update_with_etags(client: httpx.AsyncClient) -> None:
    created = await client.put("/docs/a", json={"title": "draft"}, headers={"If-None-Match": "*"})
    assert created.status_code == 201 and created.headers["ETag"] == '"1"'
    read = await client.get("/docs/a")
    assert read.status_code == 200 and read.headers["ETag"] == '"1"'
    assert read.json() == {"id": "a", "version": 1, "document": {"title": "draft"}}
    updated = await client.put("/docs/a", json={"title": "final"}, headers={"If-Match": '"1"'})
    assert updated.status_code == 200 and updated.headers["ETag"] == '"2"'
    assert (await client.get("/docs/a")).json()["document"] == {"title": "final"}


async def test_stale_if_match_is_409_with_the_current_version(client: httpx.AsyncClient) -> None:
    await client.put("/docs/a", json={"n": 1}, headers={"If-None-Match": "*"})
    await client.put("/docs/a", json={"n": 2}, headers={"If-Match": '"1"'})
    stale = await client.put("/docs/a", json={"n": 3}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409
    assert stale.headers["ETag"] == '"2"'
    body = stale.json()
    assert body["current_version"] == 2 and body["expected_version"] == 1
    assert body["state_id"] == "a"
    again = await client.put("/docs/a", json={"n": 0}, headers={"If-None-Match": "*"})
    assert again.status_code == 409 and again.json()["current_version"] == 2
    assert (await client.get("/docs/a")).json()["document"] == {"n": 2}  # nothing written


async def test_precondition_headers_are_required_and_checked(client: httpx.AsyncClient) -> None:
    missing = await client.put("/docs/a", json={})
    assert missing.status_code == 428 and "If-Match" in missing.json()["detail"]
    for bad in ("abc", "*", '"1", "2"'):
        answer = await client.put("/docs/a", json={}, headers={"If-Match": bad})
        assert answer.status_code == 400, bad
    weak = await client.put("/docs/a", json={"w": 1}, headers={"If-Match": 'W/"0"'})
    assert weak.status_code == 201  # W/"0": "no version yet", like If-None-Match: *


async def test_versions_rollback_and_delete(client: httpx.AsyncClient) -> None:
    await client.put("/docs/a", json={"n": 1}, headers={"If-None-Match": "*"})
    await client.put("/docs/a", json={"n": 2}, headers={"If-Match": '"1"'})
    rolled = await client.post("/docs/a/rollback/1")
    assert rolled.status_code == 200 and rolled.headers["ETag"] == '"3"'
    assert rolled.json() == {"id": "a", "version": 3, "restores": 1}
    listed = (await client.get("/docs/a/versions")).json()
    assert [item["version"] for item in listed] == [1, 2, 3]
    assert listed[2]["rolled_back_from"] == 1
    absent = await client.post("/docs/a/rollback/9")
    assert absent.status_code == 404 and absent.json()["version"] == 9
    assert (await client.delete("/docs/a")).status_code == 204
    assert (await client.get("/docs/a")).status_code == 404


async def test_invalid_id_is_400_and_damaged_state_is_500(
    client: httpx.AsyncClient, server: EmbeddedRedis
) -> None:
    too_long = await client.get("/docs/" + "x" * 1100)
    assert too_long.status_code == 400
    await client.put("/docs/a", json={"n": 1}, headers={"If-None-Match": "*"})
    raw = aioredis.Redis.from_url(server.url)
    try:
        stored = await aget_version(raw, "docs-app", "a", 1)
        # Flip two checksum bytes: a fixed value could equal what is there.
        flipped = stored[:11] + bytes(b ^ 0xFF for b in stored[11:13]) + stored[13:]
        await aset_version(raw, "docs-app", "a", 1, flipped)
    finally:
        await raw.aclose()
    damaged = await client.get("/docs/a")
    assert damaged.status_code == 500
    assert damaged.json() == {"detail": "the stored state is damaged", "state_id": "a", "version": 1}


async def test_lost_server_is_503_and_a_wrong_url_stops_start_up() -> None:
    with EmbeddedRedis() as doomed:
        app = create_app(doomed.url)
        async with running(app) as client:
            await client.put("/docs/a", json={}, headers={"If-None-Match": "*"})
            doomed.stop()
            answer = await client.get("/docs/a")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    nowhere = create_app(f"redis://127.0.0.1:{EmbeddedRedis().port}/0")
    with pytest.raises(StoreUnavailableError):
        async with nowhere.router.lifespan_context(nowhere):
            pass


async def test_lifespan_runs_the_applications_own_lifespan_inside(server: EmbeddedRedis) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append("start")
        yield {"greeting": "hello"}
        events.append("stop")

    app = FastAPI(lifespan=recostate_lifespan(server.url, key_prefix="lifespan-test", then=own))
    add_exception_handlers(app)

    @app.get("/ping")
    async def ping(store: Store) -> dict[str, Any]:
        return {"closed": store.closed, "exists": await store.exists("nothing")}

    async with running(app) as client:
        assert (await client.get("/ping")).json() == {"closed": False, "exists": False}
        store = app.state.recostate_store
    assert events == ["start", "stop"]
    assert store.closed


async def test_store_dependency_explains_a_missing_lifespan() -> None:
    app = FastAPI()

    @app.get("/x")
    async def handler(store: Store) -> None:
        return None

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        with pytest.raises(RuntimeError, match="recostate_lifespan"):
            await client.get("/x")


def test_etags_name_versions() -> None:
    assert etag(3) == '"3"'
    assert [parse_etag(v) for v in ('"3"', 'W/"3"', "3", ' "12" ')] == [3, 3, 3, 12]
    for bad in ("*", '"-1"', '"a"', ""):
        with pytest.raises(ValueError):
            parse_etag(bad)
