"""Construction (no Redis): option checks, defaults, no I/O, and the closed state."""

from __future__ import annotations

import inspect
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

import recostate.sync
from recostate import (
    CompressionType,
    ConfigurationError,
    RecostateError,
    RedisStatePersistence,
    StoreClosedError,
)
from recostate._validation import MAX_TTL_SECONDS

UNREACHABLE = "redis://127.0.0.1:1/0"
MiB = 1024 * 1024


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail (and record) any attempt to resolve or connect."""
    attempts: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            attempts.append(name)
            raise AssertionError(f"I/O attempted: {name}")

        return call

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    yield attempts
    assert attempts == []


def test_configuration_error_is_a_value_error() -> None:
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(ConfigurationError, RecostateError)


BAD_OPTIONS: dict[str, dict[str, Any]] = {
    "max_versions-0": {"max_versions": 0},
    "max_versions-negative": {"max_versions": -1},
    "max_versions-True": {"max_versions": True},
    "max_versions-str": {"max_versions": "3"},
    "max_versions-float": {"max_versions": 3.0},
    "max_versions-None": {"max_versions": None},
    "default_ttl-0": {"default_ttl": 0},
    "default_ttl-negative": {"default_ttl": -5},
    "default_ttl-True": {"default_ttl": True},
    "default_ttl-float": {"default_ttl": 1.5},
    "default_ttl-str": {"default_ttl": "60"},
    "default_ttl-over-100-years": {"default_ttl": MAX_TTL_SECONDS + 1},
    "default_ttl-huge": {"default_ttl": 10**30},
    "compression-unknown-str": {"compression_type": "gzip"},
    "compression-int": {"compression_type": 1},
    "compression-None": {"compression_type": None},
    "enable_versioning-int": {"enable_versioning": 1},
    "redis_options-unknown": {"redis_options": {"no_such_option": 1}},
    "redis_options-decode_responses": {"redis_options": {"decode_responses": True}},
    "redis_options-not-a-mapping": {"redis_options": [("socket_timeout", 1)]},
    "max_connections-0": {"redis_options": {"max_connections": 0}},
    "max_connections-negative": {"redis_options": {"max_connections": -1}},
    "max_connections-True": {"redis_options": {"max_connections": True}},
    "socket_timeout-0": {"redis_options": {"socket_timeout": 0}},
    "socket_timeout-negative": {"redis_options": {"socket_timeout": -1}},
    "socket_timeout-str": {"redis_options": {"socket_timeout": "5"}},
    "pool_timeout-0": {"redis_options": {"pool_timeout": 0}},
    "key_prefix-empty": {"key_prefix": ""},
    "key_prefix-open-brace": {"key_prefix": "app{"},
    "key_prefix-close-brace": {"key_prefix": "}app"},
    "key_prefix-hash-tag": {"key_prefix": "{app}"},
    "key_prefix-not-str": {"key_prefix": b"app"},
    "max_payload_bytes-over-500MiB": {"max_payload_bytes": 500 * MiB + 1},
    "max_payload_bytes-0": {"max_payload_bytes": 0},
    "max_payload_bytes-True": {"max_payload_bytes": True},
    "compression_threshold-negative": {"compression_threshold": -1},
    "offload_threshold-negative": {"offload_threshold": -1},
    "offload_threshold-float": {"offload_threshold": 1.5},
    "retries-negative": {"retries": -1},
    "retries-True": {"retries": True},
    "retry_backoff-negative": {"retry_backoff": -0.1},
    "retry_backoff-str": {"retry_backoff": "0.1"},
    "cluster-not-bool": {"cluster": "yes"},
    "cluster-with-unix-url": {"redis_url": "unix:///tmp/redis.sock", "cluster": True},
}

BAD_URLS: list[object] = [
    "http://x",
    "https://localhost:6379",
    "",
    "localhost:6379",
    "localhost",
    "//localhost:6379",
    "redis://",
    "redis://:6379/0",
    "redis://localhost:notaport/0",
    "redis://localhost:99999/0",
    "unix://",
    5,
    None,
    b"redis://localhost",
]


@pytest.mark.parametrize("options", list(BAD_OPTIONS.values()), ids=list(BAD_OPTIONS))
def test_bad_options_raise_configuration_error(options: dict[str, Any], no_network: list[str]) -> None:
    options = dict(options)
    url = options.pop("redis_url", UNREACHABLE)
    with pytest.raises(ConfigurationError):
        RedisStatePersistence(url, **options)
    with pytest.raises(ConfigurationError):
        recostate.sync.RedisStatePersistence(url, **options)


@pytest.mark.parametrize("url", BAD_URLS, ids=[repr(url) for url in BAD_URLS])
def test_bad_urls_raise_configuration_error(url: Any, no_network: list[str]) -> None:
    with pytest.raises(ConfigurationError):
        RedisStatePersistence(url)
    with pytest.raises(ConfigurationError):
        RedisStatePersistence(redis_url=url)


@pytest.mark.parametrize("url", ["unix://", "unix://localhost"])
def test_unix_url_needs_a_path(url: str) -> None:
    with pytest.raises(ConfigurationError):
        RedisStatePersistence(url)


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://localhost:6379/0", "unix:///tmp/r.sock"])
def test_cluster_refuses_unix_but_takes_tcp(url: str, no_network: list[str]) -> None:
    if url.startswith("unix"):
        with pytest.raises(ConfigurationError):
            RedisStatePersistence(url, cluster=True)
    else:
        store = RedisStatePersistence(url, cluster=True)
        assert not store.closed


async def test_client_and_redis_options_are_exclusive(no_network: list[str]) -> None:
    client = aioredis.Redis.from_url(UNREACHABLE)
    try:
        with pytest.raises(ConfigurationError):
            RedisStatePersistence(client=client, redis_options={"socket_timeout": 1})
        store = RedisStatePersistence(client=client)
        await store.aclose()
    finally:
        await client.aclose()


async def test_client_that_decodes_responses_is_refused(no_network: list[str]) -> None:
    client = aioredis.Redis.from_url(UNREACHABLE, decode_responses=True)
    try:
        with pytest.raises(ConfigurationError):
            RedisStatePersistence(client=client)
    finally:
        await client.aclose()


@pytest.mark.parametrize("client", [object(), "redis://localhost", 5])
def test_client_of_the_wrong_type_is_refused(client: Any) -> None:
    with pytest.raises(ConfigurationError):
        RedisStatePersistence(client=client)


def test_max_payload_bytes_ceiling_is_inclusive(no_network: list[str]) -> None:
    store = RedisStatePersistence(UNREACHABLE, max_payload_bytes=500 * MiB)
    assert store.config.max_payload_bytes == 500 * MiB


@pytest.mark.parametrize(
    "url",
    [
        UNREACHABLE,
        "redis://localhost:6379/0",
        "rediss://user:pass@example.invalid:6380/2",
        "redis://no-such-host.invalid/0",
        "unix:///nonexistent/redis.sock",
    ],
)
async def test_valid_construction_does_no_io(url: str, no_network: list[str]) -> None:
    store = RedisStatePersistence(
        url,
        compression_type="ZLIB",
        max_versions=3,
        default_ttl=60,
        redis_options={"socket_timeout": 1, "max_connections": 2, "pool_timeout": 1},
        key_prefix="app:*?[x]",
    )
    assert not store.closed
    assert store.config.compression_type is CompressionType.ZLIB
    assert store.config.max_versions == 3
    assert store.config.default_ttl == 60
    assert store.config.key_prefix == "app:*?[x]"
    await store.aclose()  # closing a store that never connected does no I/O either
    assert store.closed


def test_default_ttl_up_to_the_cap_of_a_call_ttl_is_accepted() -> None:
    store = RedisStatePersistence(UNREACHABLE, default_ttl=MAX_TTL_SECONDS)
    assert store.config.default_ttl == MAX_TTL_SECONDS
    with pytest.raises(ConfigurationError, match=f"default_ttl must be at most {MAX_TTL_SECONDS}"):
        RedisStatePersistence(UNREACHABLE, default_ttl=MAX_TTL_SECONDS + 1)


def _parameters(function: Any) -> list[tuple[str, Any, Any, Any]]:
    return [
        (p.name, p.kind, p.default, p.annotation)
        for p in inspect.signature(function).parameters.values()
    ]


def _args_section(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc[doc.index("Args:") : doc.index("Raises:")]


def test_sync_facade_mirrors_every_option_and_call_of_the_async_class() -> None:
    # Generic on purpose: an option or a call argument added to the async
    # class fails here until the facade takes it too.
    sync_class = recostate.sync.RedisStatePersistence
    renamed = {"aclose": "close"}
    # The async layers below, for integrations; sync code reaches them through async_store.
    below = {"codec", "storage"}
    for name, member in inspect.getmembers(RedisStatePersistence):
        if (name.startswith("_") and name != "__init__") or name in below:
            continue
        twin = getattr(sync_class, renamed.get(name, name), None)
        assert twin is not None, f"the sync facade has no {name}"
        if isinstance(member, property):
            assert isinstance(twin, property), name
        elif name not in renamed:
            assert _parameters(twin) == _parameters(member), name
    # The same documentation of every option, word for word.
    assert _args_section(sync_class) == _args_section(RedisStatePersistence)
    for name in inspect.signature(RedisStatePersistence).parameters:
        assert f"\n    {name}: " in _args_section(sync_class), name


def test_sync_construction_does_no_io(no_network: list[str]) -> None:
    store = recostate.sync.RedisStatePersistence(UNREACHABLE, max_versions=2)
    assert store.async_store.config.max_versions == 2
    store.close()


def test_defaults_match_the_spec() -> None:
    store = RedisStatePersistence()
    config = store.config
    assert config.compression_type is CompressionType.LZ4
    assert config.enable_versioning is True
    assert config.max_versions == 10
    assert config.default_ttl is None
    assert config.key_prefix == "recostate"
    assert config.max_payload_bytes == 64 * MiB
    params = inspect.signature(RedisStatePersistence).parameters
    assert params["compression_type"].default is CompressionType.LZ4
    assert params["enable_versioning"].default is True
    assert params["max_versions"].default == 10
    assert params["default_ttl"].default is None
    assert params["redis_options"].default is None
    assert params["key_prefix"].default == "recostate"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (CompressionType.NONE, CompressionType.NONE),
        ("lz4", CompressionType.LZ4),
        ("ZLIB", CompressionType.ZLIB),
        ("none", CompressionType.NONE),
    ],
)
def test_compression_type_accepts_members_and_names(given: Any, expected: CompressionType) -> None:
    assert RedisStatePersistence(compression_type=given).config.compression_type is expected


def test_versioning_off_keeps_one_version() -> None:
    store = RedisStatePersistence(enable_versioning=False, max_versions=5)
    assert store.config.versions_kept == 1
    assert RedisStatePersistence(max_versions=5).config.versions_kept == 5


def test_every_argument_but_redis_url_is_keyword_only() -> None:
    params = list(inspect.signature(RedisStatePersistence).parameters.values())
    assert params[0].name == "redis_url"
    assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert len(params) > 1
    for param in params[1:]:
        assert param.kind is inspect.Parameter.KEYWORD_ONLY, param.name
    with pytest.raises(TypeError):
        RedisStatePersistence(UNREACHABLE, CompressionType.NONE)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        recostate.sync.RedisStatePersistence(UNREACHABLE, CompressionType.NONE)  # type: ignore[call-arg]


def test_sync_facade_takes_the_same_arguments() -> None:
    store = recostate.sync.RedisStatePersistence(
        UNREACHABLE, compression_type=CompressionType.NONE, max_versions=4, key_prefix="p"
    )
    config = store.async_store.config
    assert (config.compression_type, config.max_versions, config.key_prefix) == (
        CompressionType.NONE, 4, "p",
    )
    store.close()


def test_unencodable_key_prefix_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        RedisStatePersistence(key_prefix="app\ud800")


# -- after aclose() ----------------------------------------------------------------------------

Call = Callable[[Any], Awaitable[Any]]


async def _iterate(store: RedisStatePersistence) -> list[str]:
    return [state_id async for state_id in store.iter_states()]


async def _enter(store: RedisStatePersistence) -> None:
    async with store:
        pass


CLOSED_CALLS: dict[str, Call] = {
    "save": lambda s: s.save("x", {"a": 1}),
    "save_with_metadata": lambda s: s.save_with_metadata({"a": 1}, "x"),
    "load": lambda s: s.load("x"),
    "load_with_metadata": lambda s: s.load_with_metadata("x", 1),
    "get_metadata": lambda s: s.get_metadata("x"),
    "list_versions": lambda s: s.list_versions("x"),
    "delete_version": lambda s: s.delete_version("x", 1),
    "rollback": lambda s: s.rollback("x", 1),
    "delete": lambda s: s.delete("x"),
    "exists": lambda s: s.exists("x"),
    "touch": lambda s: s.touch("x", 10),
    "prune": lambda s: s.prune("x", 1),
    "list_states": lambda s: s.list_states(),
    "list_states-tag": lambda s: s.list_states(tag="t"),
    "iter_states": _iterate,
    "get_stats": lambda s: s.get_stats(),
    "connect": lambda s: s.connect(),
    "async-with": _enter,
}


@pytest.mark.parametrize("call", list(CLOSED_CALLS.values()), ids=list(CLOSED_CALLS))
async def test_every_method_raises_store_closed_after_aclose(call: Call, no_network: list[str]) -> None:
    store = RedisStatePersistence(UNREACHABLE, retries=0)
    await store.aclose()
    assert store.closed
    with pytest.raises(StoreClosedError):
        await call(store)
    await store.aclose()  # closing twice is harmless
    with pytest.raises(StoreClosedError):
        await call(store)


async def test_store_closed_error_takes_precedence_over_bad_input() -> None:
    store = RedisStatePersistence(UNREACHABLE, retries=0)
    await store.aclose()
    with pytest.raises(StoreClosedError):
        await store.save("x", {}, ttl=0)
    with pytest.raises(StoreClosedError):
        store.iter_states(tag="t")


def test_sync_facade_after_close_raises_store_closed(no_network: list[str]) -> None:
    store = recostate.sync.RedisStatePersistence(UNREACHABLE, retries=0)
    store.close()
    with pytest.raises(StoreClosedError):
        store.save("x", {"a": 1})
    with pytest.raises(StoreClosedError):
        store.load("x")
