"""The Redis plumbing: the only part of recostate that imports ``redis``.

* ``connection``: URL and option checks, building the client and its pool.
* ``errors``: the translation of redis-py errors into recostate errors.
* ``executor``: every round trip, with retries, NOSCRIPT reloads and closing.
* ``_compat``: every use of redis-py's internals, with the versions that need it.
"""

from recostate._redis.connection import (
    AnyRedis,
    check_client,
    check_redis_options,
    check_redis_url,
    is_cluster_client,
    open_client,
)
from recostate._redis.executor import Executor, RetryPolicy

__all__ = [
    "AnyRedis",
    "Executor",
    "RetryPolicy",
    "check_client",
    "check_redis_options",
    "check_redis_url",
    "is_cluster_client",
    "open_client",
]
