"""Building the redis-py client: URL and option checks, the pool, its figures.

A standalone store gets a :class:`redis.asyncio.BlockingConnectionPool`, so
that when every connection is busy a caller waits (up to the pool timeout)
instead of failing at once. A cluster store gets a
:class:`redis.asyncio.cluster.RedisCluster`.

redis-py's own retry is turned off on clients recostate builds (unless the user
passes ``retry=``): recostate retries in one place, the executor, where it
knows which calls are idempotent.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from recostate._errors import ConfigurationError
from recostate._redis._compat import pool_use
from recostate._redis.sentinel import (
    SENTINEL_OPTIONS,
    is_sentinel_url,
    open_sentinel_client,
    parse_sentinel_url,
)

__all__ = [
    "DEFAULT_OPTIONS",
    "AnyRedis",
    "check_client",
    "check_redis_options",
    "check_redis_url",
    "is_cluster_client",
    "open_client",
    "pool_figures",
]

AnyRedis = Redis | RedisCluster

#: Options recostate sets when the user does not: every wait is bounded.
DEFAULT_OPTIONS: Mapping[str, Any] = {
    "socket_timeout": 5.0,
    "socket_connect_timeout": 5.0,
    "max_connections": 50,
    "pool_timeout": 10.0,
}

_URL_SCHEMES = {"redis", "rediss", "unix"}
_CLUSTER_URL_SCHEMES = {"redis", "rediss"}


def _parameters(*callables: Any) -> set[str]:
    names: set[str] = set()
    for func in callables:
        names.update(
            name
            for name, param in inspect.signature(func).parameters.items()
            if param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)
        )
    return names - {"self"}


# What redis-py accepts, minus what recostate owns: the payloads are bytes, and
# the host, port and pool come from the URL and from recostate itself.
_OWNED = {
    "decode_responses",
    "connection_pool",
    "host",
    "port",
    "path",
    "single_connection_client",
    "encoding",
    "encoding_errors",
    "connection_class",
    "queue_class",
    "startup_nodes",
}
_STANDALONE_OPTIONS = (
    _parameters(
        AbstractConnection.__init__,
        Connection.__init__,
        SSLConnection.__init__,
        UnixDomainSocketConnection.__init__,
        Redis.__init__,
        BlockingConnectionPool.__init__,
    )
    | {"pool_timeout"}
) - _OWNED
_CLUSTER_OPTIONS = (_parameters(RedisCluster.__init__) | {"pool_timeout"}) - _OWNED


def check_redis_url(url: object, *, cluster: bool) -> str:
    """Return ``url`` if it is a Redis URL, else raise ``ConfigurationError``."""
    if not isinstance(url, str) or not url:
        raise ConfigurationError(
            "redis_url must be a non-empty str such as 'redis://localhost:6379/0'"
        )
    if is_sentinel_url(url):
        if cluster:
            raise ConfigurationError("a redis+sentinel:// URL cannot be used with cluster=True")
        parse_sentinel_url(url)
        return url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError as exc:
        raise ConfigurationError(f"redis_url is not a valid URL: {exc}") from exc
    schemes = _CLUSTER_URL_SCHEMES if cluster else _URL_SCHEMES
    if parts.scheme not in schemes:
        raise ConfigurationError(
            f"redis_url must start with one of {sorted(s + '://' for s in schemes)}, "
            f"not {parts.scheme + '://' if parts.scheme else 'no scheme'}"
        )
    if parts.scheme == "unix" and not parts.path:
        raise ConfigurationError("a unix:// redis_url needs a socket path")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigurationError("redis_url names no host")
    return url


def check_redis_options(options: object, *, cluster: bool) -> dict[str, Any]:
    """Return the options for redis-py, defaults filled in; ``ConfigurationError`` if unknown."""
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ConfigurationError("redis_options must be a mapping of redis-py options")
    if options.get("decode_responses"):
        raise ConfigurationError("decode_responses is not supported: recostate stores bytes")
    allowed = _CLUSTER_OPTIONS if cluster else _STANDALONE_OPTIONS | SENTINEL_OPTIONS
    unknown = sorted(
        str(key) for key in options if key not in allowed and key != "decode_responses"
    )
    if unknown:
        raise ConfigurationError(f"unknown redis_options: {', '.join(unknown)}")
    merged = {**DEFAULT_OPTIONS, **{k: v for k, v in options.items() if k != "decode_responses"}}
    if "timeout" in merged and "pool_timeout" not in options:
        merged["pool_timeout"] = merged.pop("timeout")
    max_connections = merged["max_connections"]
    if (
        isinstance(max_connections, bool)
        or not isinstance(max_connections, int)
        or max_connections < 1
    ):
        raise ConfigurationError("redis_options['max_connections'] must be an int >= 1")
    for name in ("socket_timeout", "socket_connect_timeout", "pool_timeout"):
        value = merged[name]
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)  # NaN passes "<= 0"; inf is no bound
            or value <= 0
        ):
            raise ConfigurationError(
                f"redis_options[{name!r}] must be a positive, finite number of seconds"
            )
    merged.setdefault("retry", Retry(NoBackoff(), 0))
    return merged


def check_client(client: object) -> AnyRedis:
    """Return ``client`` if it is a redis-py asyncio client that returns bytes."""
    if not isinstance(client, (Redis, RedisCluster)):
        raise ConfigurationError(
            "client must be a redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster"
        )
    if isinstance(client, Redis):
        kwargs = client.connection_pool.connection_kwargs
    else:
        kwargs = client.get_connection_kwargs()
    if kwargs.get("decode_responses"):
        raise ConfigurationError("the client decodes responses; recostate needs bytes")
    return client


def open_client(url: str, options: Mapping[str, Any], *, cluster: bool) -> AnyRedis:
    """Create (without connecting) the client for ``url``."""
    opts = dict(options)
    pool_timeout = opts.pop("pool_timeout")
    if cluster:
        # RedisCluster has no blocking pool; the executor bounds waits instead.
        return RedisCluster.from_url(url, **opts)
    if is_sentinel_url(url):
        return open_sentinel_client(url, opts, pool_timeout)
    if SENTINEL_OPTIONS & opts.keys():
        raise ConfigurationError(
            f"redis_options {sorted(SENTINEL_OPTIONS & opts.keys())} need a redis+sentinel:// URL"
        )
    pool = BlockingConnectionPool.from_url(url, timeout=pool_timeout, **opts)
    try:
        # Building (not connecting) one connection checks every option against
        # the connection class the URL selects: TLS options on a redis:// URL
        # fail here, at construction, rather than at the first call.
        pool.make_connection()  # type: ignore[no-untyped-call]
    except TypeError as exc:
        raise ConfigurationError(f"redis_options do not fit {url.split(':', 1)[0]}:// : {exc}") from exc
    # from_pool: the client owns the pool, so closing the client closes its connections.
    return Redis.from_pool(pool)


def pool_figures(client: Redis) -> dict[str, Any]:
    """Return a standalone client's pool size and use, as plain ints (a cluster's: ``cluster.py``)."""
    pool = client.connection_pool
    in_use, idle = pool_use(pool)
    return {
        "kind": type(pool).__name__,
        "max_connections": int(pool.max_connections),
        "in_use": in_use,
        "idle": idle,
        "timeout": getattr(pool, "timeout", None),
    }


def is_cluster_client(client: object) -> bool:
    """Tell whether ``client`` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)
