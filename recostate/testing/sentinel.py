"""A throwaway Sentinel-managed primary on loopback ports, for tests and benchmarks.

:class:`EmbeddedSentinelGroup` starts a primary, its replicas and three
Sentinels (``redis-server <conf> --sentinel``) watching it under one service
name, with a short ``down-after-milliseconds``, so that a killed primary is
replaced by a replica within a few seconds. Stores reach it through
:attr:`EmbeddedSentinelGroup.url`, a ``redis+sentinel://`` URL.
"""

from __future__ import annotations

import contextlib
import os

from recostate.testing.resp import RespError, admin_command, text
from recostate.testing.servers import (
    EmbeddedRedis,
    ServerBinary,
    ServerGroup,
    resolve_binary,
    wait_until,
)

__all__ = ["EmbeddedSentinelGroup", "SentinelProcess"]


class SentinelProcess(EmbeddedRedis):
    """A ``redis-server --sentinel`` (or ``valkey-server``) process with its own config file.

    The Sentinel rewrites the file as it learns the group, so a restarted
    Sentinel remembers it.

    Args:
        binary: the server to run.
        service: the name of the monitored primary.
        primary_port: the port the primary listens on, at start.
        quorum: how many Sentinels must agree that the primary is down.
        down_after_ms: silence after which a Sentinel considers it down.
    """

    def __init__(
        self,
        binary: str | ServerBinary,
        *,
        service: str,
        primary_port: int,
        quorum: int,
        down_after_ms: int,
    ) -> None:
        super().__init__(binary)
        self.settings = [
            f"sentinel monitor {service} 127.0.0.1 {primary_port} {quorum}",
            f"sentinel down-after-milliseconds {service} {down_after_ms}",
            f"sentinel failover-timeout {service} {max(2000, down_after_ms * 4)}",
            f"sentinel parallel-syncs {service} 1",
        ]

    def command_line(self) -> list[str]:
        """Return the command that starts this Sentinel (writing its config first)."""
        conf = os.path.join(self.directory, "sentinel.conf")
        if not os.path.exists(conf):
            with open(conf, "w") as out:
                out.write("\n".join(self.settings) + "\n")
        return [self.binary, conf, "--sentinel", *self.process_args()]


class EmbeddedSentinelGroup(ServerGroup):
    """A primary, its replicas and three Sentinels this program started, and stops.

    Example::

        with EmbeddedSentinelGroup() as group:
            store = RedisStatePersistence(group.url)

    Args:
        binary: the server to run: a :class:`~recostate.testing.ServerBinary`,
            a path, or ``None`` for :func:`~recostate.testing.find_server`.
        replicas: how many replicas follow the primary.
        sentinels: how many Sentinels watch it (the quorum is a majority).
        service: the monitored service name.
        down_after_ms: how long the primary may be silent before a failover.
    """

    def __init__(
        self,
        binary: str | ServerBinary | None = None,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        service: str = "recostate",
        down_after_ms: int = 1000,
    ) -> None:
        self.server_binary = resolve_binary(binary)
        self.binary = self.server_binary.path
        self.service = service
        self.replica_count = replicas
        self.sentinel_count = sentinels
        self.down_after_ms = down_after_ms
        self.servers: list[EmbeddedRedis] = []
        self.sentinels: list[SentinelProcess] = []

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL that names every Sentinel and the service."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def processes(self) -> list[EmbeddedRedis]:
        """Return the Sentinels, then the servers."""
        return [*self.sentinels, *self.servers]

    def server(self, port: int) -> EmbeddedRedis:
        """Return the Redis server listening on ``port``."""
        return next(server for server in self.servers if server.port == port)

    def _server_args(self) -> list[str]:
        # Replicas sync at once instead of waiting for more replicas to batch.
        return ["--repl-diskless-sync-delay", "0"]

    def start(self, timeout: float = 60.0) -> EmbeddedSentinelGroup:
        """Start the primary, the replicas and the Sentinels; wait until all see each other."""
        try:
            primary = EmbeddedRedis(self.server_binary, args=self._server_args()).start()
            self.servers.append(primary)
            for _ in range(self.replica_count):
                args = [*self._server_args(), "--replicaof", "127.0.0.1", str(primary.port)]
                self.servers.append(EmbeddedRedis(self.server_binary, args=args).start())
            quorum = self.sentinel_count // 2 + 1
            for _ in range(self.sentinel_count):
                sentinel = SentinelProcess(
                    self.server_binary,
                    service=self.service,
                    primary_port=primary.port,
                    quorum=quorum,
                    down_after_ms=self.down_after_ms,
                )
                self.sentinels.append(sentinel)
                sentinel.start()
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def primary_port(self) -> int:
        """Return the port of the primary, as the first Sentinel that answers names it."""
        for sentinel in self.sentinels:
            with contextlib.suppress(OSError, RespError):
                reply = admin_command(
                    sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
                )
                if reply:
                    return int(reply[1])
        raise RuntimeError("no Sentinel named the primary")

    def _ready(self) -> bool:
        try:
            primary = self.primary_port()
            for sentinel in self.sentinels:
                if sentinel.pid is None:
                    continue
                fields = admin_command(sentinel.port, "SENTINEL", "MASTER", self.service)
                info = dict(zip(map(text, fields[::2]), map(text, fields[1::2]), strict=True))
                if int(info["port"]) != primary or "s_down" in info["flags"]:
                    return False
                live_sentinels = sum(1 for s in self.sentinels if s.pid is not None)
                if int(info["num-other-sentinels"]) < live_sentinels - 1:
                    return False
                live_replicas = sum(1 for s in self.servers if s.pid is not None) - 1
                if int(info["num-slaves"]) < live_replicas:
                    return False
            for server in self.servers:
                if server.pid is None or server.port == primary:
                    continue
                replication = text(admin_command(server.port, "INFO", "replication"))
                if f"master_port:{primary}" not in replication:
                    return False
                if "master_link_status:up" not in replication:
                    return False
        except (OSError, RespError, RuntimeError, KeyError, ValueError):
            return False
        return True

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the Sentinels agree on the primary and every replica follows it."""
        wait_until(self._ready, timeout, "the Sentinel group did not settle", step=0.1)

    def wait_promoted(self, old_primary: int, timeout: float = 60.0) -> int:
        """Wait until the Sentinels name another primary than ``old_primary``; return its port.

        (A killed server started again with :meth:`restart` is made a replica
        by the Sentinels.)
        """
        promoted: list[int] = []

        def named_another() -> bool:
            with contextlib.suppress(RuntimeError, OSError, RespError):
                port = self.primary_port()
                if port != old_primary and text(admin_command(port, "ROLE")[0]) == "master":
                    promoted.append(port)
                    return True
            return False

        wait_until(named_another, timeout, "the Sentinels promoted no replica", step=0.1)
        return promoted[0]

    def stop(self) -> None:
        """Stop every process and remove their directories."""
        super().stop()
        self.sentinels = []
        self.servers = []
