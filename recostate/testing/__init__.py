"""Throwaway Redis and Valkey servers for tests, demos and benchmarks, and a pytest plugin.

Everything here runs real server binaries (no mocks) on free ports of
``127.0.0.1`` and removes what they kept on disk when stopped::

    from recostate.testing import EmbeddedRedis, find_servers

    print([str(binary) for binary in find_servers()])   # what can be started, by name
    with EmbeddedRedis() as server:                      # the newest Redis found
        store = RedisStatePersistence(server.url)

* :class:`ServerBinary`, :func:`find_servers`, :func:`find_server`: which
  server binaries are installed, named by what they report
  (``redis-7.0.15``, ``valkey-8.1.8``) (``recostate.testing.servers``).
* :class:`EmbeddedRedis`: one server process: start, stop, kill, restart.
* :class:`EmbeddedCluster`: a Redis (or Valkey) Cluster, with failover and
  resharding helpers (``recostate.testing.cluster``).
* :class:`EmbeddedSentinelGroup`: a primary, its replicas and Sentinels
  (``recostate.testing.sentinel``).
* :func:`admin_command`: one command over a plain socket, for administration
  (``recostate.testing.resp``).
* :func:`purge_prefix`: delete every state under a key prefix.

The pytest fixtures (``recostate_url``, ``recostate_store``, ...) live in
``recostate.testing.plugin``, which pytest loads by itself (entry point
``pytest11``, name ``recostate``). Importing this package does not import
pytest. See ``docs/guides/testing.md``.
"""

from recostate.testing.cleanup import purge_prefix
from recostate.testing.cluster import ClusterNodeInfo, EmbeddedCluster
from recostate.testing.resp import RespError, admin_command
from recostate.testing.sentinel import EmbeddedSentinelGroup
from recostate.testing.servers import (
    EmbeddedRedis,
    ServerBinary,
    find_server,
    find_servers,
    free_port,
)

__all__ = [
    "ClusterNodeInfo",
    "EmbeddedCluster",
    "EmbeddedRedis",
    "EmbeddedSentinelGroup",
    "RespError",
    "ServerBinary",
    "admin_command",
    "find_server",
    "find_servers",
    "free_port",
    "purge_prefix",
]
