"""High availability without a cluster: a primary watched by Redis Sentinel.

A store reaches a Sentinel-managed primary through a URL of the form::

    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]

``host:port`` pairs name the Sentinels (port 26379 when left out),
``service`` is the name they monitor (``sentinel monitor <service> ...``),
and the user and password, if any, are those of the Redis servers.
``rediss+sentinel://`` speaks TLS to the Redis servers. Options for the
Sentinels themselves (a password, TLS) go in
``redis_options["sentinel_kwargs"]``; ``redis_options["min_other_sentinels"]``
is passed to redis-py's ``Sentinel``.

Each new connection asks the Sentinels where the primary is. When the primary
fails, calls fail (and are retried, then raise ``StoreUnavailableError``)
until the Sentinels have promoted a replica; the next connections go to it.
A former primary that answers ``READONLY`` is left at once.

The pool blocks when full, as on one server: :class:`BlockingSentinelPool`
is redis-py's Sentinel pool with the waiting of its blocking pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from recostate._errors import ConfigurationError

__all__ = [
    "SENTINEL_OPTIONS",
    "SENTINEL_SCHEMES",
    "BlockingSentinelPool",
    "SentinelURL",
    "is_sentinel_url",
    "open_sentinel_client",
    "parse_sentinel_url",
]

SENTINEL_SCHEMES = frozenset({"redis+sentinel", "rediss+sentinel"})
#: redis_options that only a Sentinel URL takes.
SENTINEL_OPTIONS = frozenset({"sentinel_kwargs", "min_other_sentinels"})
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int
    username: str | None
    password: str | None
    ssl: bool


def is_sentinel_url(url: str) -> bool:
    """Tell whether ``url`` names Sentinels rather than a Redis server."""
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES


def _host_port(item: str) -> tuple[str, int]:
    if item.startswith("["):  # [IPv6]:port
        host, _, rest = item[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
    if not host:
        raise ConfigurationError(f"a Sentinel address in redis_url has no host: {item!r}")
    try:
        port = int(port_text) if port_text else DEFAULT_SENTINEL_PORT
    except ValueError:
        raise ConfigurationError(f"bad Sentinel port in redis_url: {item!r}") from None
    if not 0 < port < 65536:
        raise ConfigurationError(f"bad Sentinel port in redis_url: {item!r}")
    return host, port


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse a ``redis+sentinel://`` URL; ``ConfigurationError`` when it is malformed."""
    scheme, _, rest = url.partition("://")
    location, _, path = rest.partition("/")
    credentials, _, hosts = location.rpartition("@")
    username = password = None
    if credentials:
        user, has_password, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    items = [item for item in hosts.split(",") if item]
    if not items:
        raise ConfigurationError("a redis+sentinel:// URL names no Sentinel")
    service, _, db_text = path.partition("/")
    service = unquote(service)
    if not service:
        raise ConfigurationError(
            "a redis+sentinel:// URL needs the monitored service name: "
            "redis+sentinel://host:26379/<service>[/db]"
        )
    try:
        db = int(db_text.strip("/") or 0)
    except ValueError:
        raise ConfigurationError(f"bad database number in redis_url: {db_text!r}") from None
    return SentinelURL(
        sentinels=tuple(_host_port(item) for item in items),
        service_name=service,
        db=db,
        username=username,
        password=password,
        ssl=scheme.lower() == "rediss+sentinel",
    )


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool that waits (up to ``timeout``) for a free connection."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        """Close the connections (and, when closing all, those to the Sentinels)."""
        await super().disconnect(inuse_connections)
        if inuse_connections:
            # The client is closing. Sentinel connections reopen on demand, so
            # closing them on any full disconnect is harmless.
            await self.sentinel_manager.aclose()


def open_sentinel_client(url: str, options: Mapping[str, Any], pool_timeout: float | None) -> Redis:
    """Create (without connecting) a client of the primary the Sentinels of ``url`` name."""
    parsed = parse_sentinel_url(url)
    opts = dict(options)
    sentinel_kwargs = opts.pop("sentinel_kwargs", None) or {}
    min_other = int(opts.pop("min_other_sentinels", 0) or 0)
    if not isinstance(sentinel_kwargs, Mapping):
        raise ConfigurationError("redis_options['sentinel_kwargs'] must be a mapping")
    # The Sentinels answer small queries: give them the same timeouts.
    sentinel_options = {
        "socket_timeout": opts.get("socket_timeout"),
        "socket_connect_timeout": opts.get("socket_connect_timeout"),
        **sentinel_kwargs,
    }
    manager = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
        list(parsed.sentinels), min_other_sentinels=min_other, sentinel_kwargs=sentinel_options
    )
    if parsed.username is not None:
        opts.setdefault("username", parsed.username)
    if parsed.password is not None:
        opts.setdefault("password", parsed.password)
    if parsed.ssl:
        opts["ssl"] = True
    client: Redis = manager.master_for(
        parsed.service_name,
        connection_pool_class=BlockingSentinelPool,
        db=parsed.db,
        timeout=pool_timeout,
        **opts,
    )
    try:
        # As for one server: options that do not fit the connection class fail now.
        client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
    except TypeError as exc:
        raise ConfigurationError(f"redis_options do not fit a Sentinel primary: {exc}") from exc
    return client
