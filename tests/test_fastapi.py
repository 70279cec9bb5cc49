"""recostate.contrib.fastapi and examples/fastapi_app.py, in-process over httpx against real Redis."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel

from recostate import RedisStatePersistence, StoreUnavailableError
from recostate.contrib.fastapi import (
    ExpectedVersion,
    IdempotencyKey,
    RequiredIdempotencyKey,
    Store,
    add_exception_handlers,
    etag,
    parse_etag,
    recostate_lifespan,
    set_etag,
)
from recostate.testing import EmbeddedRedis
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


class Cart(BaseModel):
    owner: str
    items: list[str] = []


def cart_app(url: str, key_prefix: str, **options: Any) -> FastAPI:
    """A service that keeps pydantic carts, with Idempotency-Key on its writes."""
    app = FastAPI(lifespan=recostate_lifespan(url, key_prefix=key_prefix, **options))
    add_exception_handlers(app)

    @app.get("/carts/{cart_id}")
    async def get_cart(cart_id: str, store: Store, response: Response) -> Cart:
        found = await store.load_with_metadata(cart_id, type=Cart)
        if found is None:
            raise HTTPException(404, "no such cart")
        set_etag(response, found[1])
        return found[0]

    @app.put("/carts/{cart_id}")
    async def put_cart(
        cart_id: str, cart: Cart, store: Store, expected: ExpectedVersion, response: Response
    ) -> dict[str, int]:
        meta = await store.save(cart_id, cart, expected_version=expected)
        set_etag(response, meta)
        return {"version": meta.version}

    @app.post("/carts/{cart_id}/items")
    async def add_item(
        cart_id: str, item: str, store: Store, expected: ExpectedVersion, key: RequiredIdempotencyKey
    ) -> dict[str, Any]:
        cart = await store.load(cart_id, type=Cart) or Cart(owner="anonymous")
        cart.items.append(item)
        meta = await store.save(cart_id, cart, expected_version=expected, idempotency_key=key)
        return {"version": meta.version}

    @app.post("/carts/{cart_id}/clear")
    async def clear(cart_id: str, store: Store, key: IdempotencyKey) -> dict[str, Any]:
        meta = await store.save(cart_id, Cart(owner="anonymous"), idempotency_key=key)
        return {"version": meta.version}

    return app


@pytest.fixture
def cart_prefix(server: EmbeddedRedis) -> Iterator[str]:
    prefix = f"carts-{uuid.uuid4().hex[:8]}"
    yield prefix
    with redis.Redis(host=server.host, port=server.port) as admin:
        keys = list(admin.scan_iter(match=f"{prefix}*"))
        if keys:
            admin.delete(*keys)


async def test_a_model_in_is_a_model_out(server: EmbeddedRedis, cart_prefix: str) -> None:
    async with running(cart_app(server.url, cart_prefix)) as client:
        put = await client.put("/carts/c1", json={"owner": "ada", "items": ["tea"]})
        assert put.status_code == 200 and put.json() == {"version": 1}
        got = await client.get("/carts/c1")
        assert got.status_code == 200 and got.headers["ETag"] == '"1"'
        assert got.json() == {"owner": "ada", "items": ["tea"]}
        refused = await client.put("/carts/c1", json={"items": ["tea"]})  # no owner
        assert refused.status_code == 422  # FastAPI's own validation: nothing saved
    async with RedisStatePersistence(server.url, key_prefix=cart_prefix) as store:
        assert await store.load("c1") == {"owner": "ada", "items": ["tea"]}  # plain data
        assert [m.version for m in await store.list_versions("c1")] == [1]


async def test_a_retry_with_the_same_idempotency_key_writes_once(
    server: EmbeddedRedis, cart_prefix: str
) -> None:
    async with running(cart_app(server.url, cart_prefix)) as client:
        first = await client.post("/carts/c1/items?item=tea", headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 200 and first.json() == {"version": 1}
        # The client never saw the answer and sends the request again.
        again = await client.post("/carts/c1/items?item=tea", headers={"Idempotency-Key": "k-1"})
        assert again.status_code == 200 and again.json() == {"version": 1}
        quoted = await client.post("/carts/c1/items?item=tea", headers={"Idempotency-Key": '"k-1"'})
        assert quoted.json() == {"version": 1}  # the IETF draft's quoted form: the same key
        other = await client.post("/carts/c1/items?item=jam", headers={"Idempotency-Key": "k-2"})
        assert other.json() == {"version": 2}
        assert (await client.get("/carts/c1")).json()["items"] == ["tea", "jam"]
        # A compare-and-set retried with its key gets its own result, not a conflict.
        headers = {"If-Match": '"2"', "Idempotency-Key": "k-3"}
        added = await client.post("/carts/c1/items?item=milk", headers=headers)
        retried = await client.post("/carts/c1/items?item=milk", headers=headers)
        assert added.status_code == retried.status_code == 200
        assert added.json() == retried.json() == {"version": 3}
        # Without a key (the optional IdempotencyKey), every request is a new write.
        assert (await client.post("/carts/c1/clear")).json() == {"version": 4}
        assert (await client.post("/carts/c1/clear")).json() == {"version": 5}
    async with RedisStatePersistence(server.url, key_prefix=cart_prefix) as store:
        assert [m.version for m in await store.list_versions("c1")] == [1, 2, 3, 4, 5]
        assert await store.load("c1", 3) == {"owner": "anonymous", "items": ["tea", "jam", "milk"]}


async def test_a_bad_idempotency_key_is_a_400_that_says_why(
    server: EmbeddedRedis, cart_prefix: str
) -> None:
    cases = {
        "": "must not be empty",
        '""': "must not be empty",
        "k" * 257: "at most 256 characters, not 257",
        '"unterminated': "malformed quoted string",
        '"a"b"': "malformed quoted string",
    }
    async with running(cart_app(server.url, cart_prefix)) as client:
        for value, reason in cases.items():
            answer = await client.post("/carts/c1/items?item=x", headers={"Idempotency-Key": value})
            assert answer.status_code == 400, value
            assert reason in answer.json()["detail"], (value, answer.json())
        missing = await client.post("/carts/c1/items?item=x")
        assert missing.status_code == 400
        assert missing.json() == {"detail": "this write needs an Idempotency-Key header"}
        longest = await client.post("/carts/c1/items?item=x", headers={"Idempotency-Key": "k" * 256})
        assert longest.status_code == 200
    async with RedisStatePersistence(server.url, key_prefix=cart_prefix) as store:
        assert [m.version for m in await store.list_versions("c1")] == [1]


async def test_an_unreplicated_write_is_a_500_that_says_it_was_applied(
    server: EmbeddedRedis, cart_prefix: str
) -> None:
    # No replica exists, so WAIT never counts one: ReplicationError after the write.
    app = cart_app(server.url, cart_prefix, wait_for_replicas=1, wait_timeout=0.05)
    async with running(app) as client:
        answer = await client.put("/carts/c1", json={"owner": "ada"})
    assert answer.status_code == 500
    assert "Retry-After" not in answer.headers  # a retry would write a second version
    assert answer.json() == {
        "detail": "the write was applied, but fewer replicas than required confirmed it",
        "applied": True,
        "state_id": "c1",
        "version": 1,
        "replicas_required": 1,
        "replicas_acknowledged": 0,
    }
    async with RedisStatePersistence(server.url, key_prefix=cart_prefix) as store:
        assert await store.load("c1") == {"owner": "ada", "items": []}


async def test_a_refused_write_is_a_500_that_does_not_invite_a_retry(cart_prefix: str) -> None:
    with EmbeddedRedis() as full:
        async with running(cart_app(full.url, cart_prefix)) as client:
            with redis.Redis(host=full.host, port=full.port) as admin:
                admin.config_set("maxmemory-policy", "noeviction")
                admin.config_set("maxmemory", 1)  # every write is over the limit
                answer = await client.put("/carts/c1", json={"owner": "ada"})
                admin.config_set("maxmemory", 0)
            assert answer.status_code == 500
            assert "Retry-After" not in answer.headers
            assert answer.json() == {"detail": "the state store refused the request", "applied": False}
            assert (await client.get("/carts/c1")).status_code == 404  # nothing was applied
