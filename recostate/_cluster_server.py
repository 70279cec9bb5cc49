"""A throwaway Redis Cluster on loopback ports, for tests and benchmarks.

:class:`EmbeddedCluster` starts ``primaries * (1 + replicas)`` redis-server
processes (:class:`~recostate._server.EmbeddedRedis`) with ``cluster-enabled
yes`` and a short ``cluster-node-timeout``, so that a killed primary is
replaced by its replica within a few seconds. The cluster is created with
``redis-cli --cluster create`` when a ``redis-cli`` is found (and there are
at least 3 primaries, which it requires), otherwise with
``CLUSTER ADDSLOTS`` / ``MEET`` / ``REPLICATE``; :meth:`EmbeddedCluster.start`
returns once every node reports ``cluster_state:ok``, agrees on who serves
every slot, and every replica is in sync.

The helpers used by the scale-out tests live here too: killing and restarting
a node, waiting for a failover, and moving slots between primaries with
``CLUSTER SETSLOT`` + ``MIGRATE``, the steps ``redis-cli --cluster reshard``
takes.

This module speaks RESP over a plain socket (only ``recostate._redis`` imports
redis-py), which is all the administration commands need.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from recostate._server import EmbeddedRedis, find_redis_server, free_port

__all__ = ["SLOTS", "ClusterNodeInfo", "EmbeddedCluster", "admin_command", "find_redis_cli"]

#: The number of hash slots of a Redis Cluster.
SLOTS = 16384

# The cluster bus listens on port + 10000 (the only choice before Redis 7).
_BUS_OFFSET = 10000


class RespError(Exception):
    """An error reply of a server to an administration command."""


def _encode(args: Sequence[Any]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            self._fill()
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _exact(self, size: int) -> bytes:
        while len(self._buf) < size + 2:
            self._fill()
        data, self._buf = self._buf[:size], self._buf[size + 2 :]
        return data

    def reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._exact(size)
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self.reply() for _ in range(count)]
        raise ConnectionError(f"unexpected RESP reply {line[:40]!r}")


def admin_command(port: int, *args: Any, host: str = "127.0.0.1", timeout: float = 10.0) -> Any:
    """Send one command to ``host:port`` and return its reply; ``RespError`` on an error reply."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_encode(args))
        reply = _Reader(sock).reply()
    if isinstance(reply, RespError):
        raise reply
    return reply


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def find_redis_cli(server_binary: str) -> str | None:
    """Return the ``redis-cli`` beside ``server_binary``, else the one on ``PATH``."""
    beside = os.path.join(os.path.dirname(os.path.realpath(server_binary)), "redis-cli")
    plain = os.path.join(os.path.dirname(server_binary), "redis-cli")
    for path in (plain, beside):
        if os.access(path, os.X_OK):
            return path
    return shutil.which("redis-cli")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_node_port(taken: set[int]) -> int:
    # The node's port and its bus port (port + 10000) must both be free.
    for _ in range(200):
        port = free_port()
        bus = port + _BUS_OFFSET
        if port in taken or bus in taken or bus > 65535:
            continue
        if _bindable(bus):
            return port
    raise RuntimeError("found no free loopback port pair for a cluster node")


@dataclass(frozen=True)
class ClusterNodeInfo:
    """One line of ``CLUSTER NODES``: a node as the cluster sees it."""

    node_id: str
    port: int
    flags: frozenset[str]
    primary_id: str | None
    slots: tuple[tuple[int, int], ...]
    connected: bool

    @property
    def is_primary(self) -> bool:
        """Whether the node serves slots (or may): it is flagged ``master``."""
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        """Whether the cluster considers the node failing."""
        return "fail" in self.flags or "fail?" in self.flags


def _parse_nodes(text: str) -> list[ClusterNodeInfo]:
    nodes = []
    for line in text.strip().splitlines():
        parts = line.split()
        address = parts[1].split("@")[0]
        port = int(address.rsplit(":", 1)[1]) if ":" in address and address[-1] != ":" else 0
        slots: list[tuple[int, int]] = []
        for item in parts[8:]:
            if item.startswith("["):
                continue  # a slot being migrated or imported
            low, _, high = item.partition("-")
            slots.append((int(low), int(high or low)))
        nodes.append(
            ClusterNodeInfo(
                node_id=parts[0],
                port=port,
                flags=frozenset(parts[2].split(",")),
                primary_id=None if parts[3] == "-" else parts[3],
                slots=tuple(slots),
                connected=parts[7] == "connected",
            )
        )
    return nodes


class EmbeddedCluster:
    """A Redis Cluster of redis-server processes this program started, and stops.

    Example::

        with EmbeddedCluster() as cluster:
            store = RedisStatePersistence(cluster.url, cluster=True)

    Args:
        binary: the redis-server to run (default: the newest found).
        primaries: how many primaries share the 16384 slots.
        replicas: replicas per primary.
        node_timeout_ms: ``cluster-node-timeout``: how long a silent node has
            before it is failed over.
        use_redis_cli: create the cluster with ``redis-cli --cluster create``
            when one is found (``False``: always with ``CLUSTER`` commands).
    """

    def __init__(
        self,
        binary: str | None = None,
        *,
        primaries: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1000,
        use_redis_cli: bool = True,
    ) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise RuntimeError("no redis-server found to start a cluster with")
        if primaries < 1 or replicas < 0:
            raise ValueError("a cluster needs at least one primary")
        self.binary = found
        self.host = "127.0.0.1"
        self.primary_count = primaries
        self.replica_count = replicas
        self.node_timeout_ms = node_timeout_ms
        self.redis_cli = find_redis_cli(found) if use_redis_cli else None
        self.nodes: list[EmbeddedRedis] = []

    # -- addresses ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """A ``redis://`` URL of one running node (any node will do for a cluster client)."""
        running = [node for node in self.nodes if node.pid is not None]
        return self.url_of((running or self.nodes)[0])

    def url_of(self, node: EmbeddedRedis) -> str:
        """Return the ``redis://`` URL of ``node``."""
        return f"redis://{self.host}:{node.port}"

    @property
    def ports(self) -> list[int]:
        """The ports of every node, in start order."""
        return [node.port for node in self.nodes]

    def node(self, port: int) -> EmbeddedRedis:
        """Return the node listening on ``port``."""
        return next(node for node in self.nodes if node.port == port)

    # -- starting and stopping -------------------------------------------------------------

    def _node_args(self) -> list[str]:
        return [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            # A replica cut off for a while may still take over: tests kill
            # primaries on purpose, the data is what matters.
            "--cluster-replica-validity-factor",
            "0",
            # Replicas sync at once instead of waiting for more replicas to batch.
            "--repl-diskless-sync-delay",
            "0",
        ]

    def start(self, timeout: float = 60.0) -> EmbeddedCluster:
        """Start every node, create the cluster, wait until it serves every slot."""
        taken: set[int] = set()
        total = self.primary_count * (1 + self.replica_count)
        try:
            for _ in range(total):
                port = _free_node_port(taken)
                taken.update((port, port + _BUS_OFFSET))
                self.nodes.append(EmbeddedRedis(self.binary, args=self._node_args(), port=port))
            for node in self.nodes:
                node.start()
            # redis-cli refuses to create a cluster of fewer than 3 primaries.
            if self.redis_cli and self.primary_count >= 3:
                self._create_with_cli(timeout)
            else:
                self._create_with_commands(timeout)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _create_with_cli(self, timeout: float) -> None:
        assert self.redis_cli is not None
        addresses = [f"{self.host}:{node.port}" for node in self.nodes]
        result = subprocess.run(
            [
                self.redis_cli,
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                str(self.replica_count),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0 or "[OK] All 16384 slots covered" not in result.stdout:
            raise RuntimeError(f"redis-cli --cluster create failed: {result.stdout[-2000:]}")

    def _create_with_commands(self, timeout: float) -> None:
        primaries = self.nodes[: self.primary_count]
        share = SLOTS // self.primary_count
        for index, node in enumerate(primaries):
            low = index * share
            high = SLOTS - 1 if index == self.primary_count - 1 else low + share - 1
            admin_command(node.port, "CLUSTER", "ADDSLOTS", *range(low, high + 1))
        first = self.nodes[0].port
        for node in self.nodes[1:]:
            admin_command(node.port, "CLUSTER", "MEET", self.host, first)
        ids = {node.port: _text(admin_command(node.port, "CLUSTER", "MYID")) for node in self.nodes}
        deadline = time.monotonic() + timeout
        for index, node in enumerate(self.nodes[self.primary_count :]):
            primary = primaries[index % self.primary_count]
            # A node can only replicate a primary it has heard of through gossip.
            while True:
                try:
                    admin_command(node.port, "CLUSTER", "REPLICATE", ids[primary.port])
                    break
                except RespError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def topology(self, via: int | None = None) -> list[ClusterNodeInfo]:
        """Return ``CLUSTER NODES`` as seen from the node on port ``via`` (default: any live one)."""
        ports = [via] if via is not None else [n.port for n in self.nodes if n.pid is not None]
        last: Exception | None = None
        for port in ports:
            try:
                return _parse_nodes(_text(admin_command(port, "CLUSTER", "NODES")))
            except (OSError, RespError) as exc:
                last = exc
        raise RuntimeError(f"no node answered CLUSTER NODES: {last}")

    def _healthy(self) -> bool:
        running = [node for node in self.nodes if node.pid is not None]
        views = []
        for node in running:
            try:
                info = _text(admin_command(node.port, "CLUSTER", "INFO", timeout=2))
                if "cluster_state:ok" not in info:
                    return False
                views.append(self.topology(node.port))
                replication = _text(admin_command(node.port, "INFO", "replication"))
                if "role:slave" in replication and "master_link_status:up" not in replication:
                    return False
            except (OSError, RespError):
                return False
        owners = []
        for view in views:
            live = [n for n in view if not n.failed]
            if len(live) != len(running) or not all(
                n.connected or "myself" in n.flags for n in live
            ):
                return False
            owners.append(sorted((n.port, n.slots) for n in live if n.is_primary and n.slots))
        return all(owner == owners[0] for owner in owners)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until every running node reports ``cluster_state:ok`` and they all agree."""
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not become healthy in time")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every node and remove their directories."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
        self.nodes = []

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- roles, failover ------------------------------------------------------------------

    def primaries(self) -> list[ClusterNodeInfo]:
        """Return the live primaries that serve slots, by port."""
        view = self.topology()
        return sorted(
            (n for n in view if n.is_primary and n.slots and not n.failed), key=lambda n: n.port
        )

    def replicas_of(self, primary: ClusterNodeInfo) -> list[ClusterNodeInfo]:
        """Return the live replicas of ``primary``."""
        return [n for n in self.topology() if n.primary_id == primary.node_id and not n.failed]

    def kill(self, port: int) -> None:
        """Kill the node on ``port`` with SIGKILL (its data directory is kept)."""
        self.node(port).kill()

    def restart(self, port: int, timeout: float = 30.0) -> None:
        """Start the killed node on ``port`` again; it rejoins the cluster from ``nodes.conf``."""
        self.node(port).start(timeout)

    def wait_promoted(self, old_primary: ClusterNodeInfo, timeout: float = 30.0) -> int:
        """Wait until a replica serves ``old_primary``'s slots; return its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                for node in self.primaries():
                    if node.port != old_primary.port and set(old_primary.slots) <= set(node.slots):
                        return node.port
            time.sleep(0.1)
        raise RuntimeError("no replica took over the killed primary's slots in time")

    # -- resharding -----------------------------------------------------------------------

    def move_slots(
        self, slots: Sequence[int], source: ClusterNodeInfo, target: ClusterNodeInfo
    ) -> int:
        """Move ``slots`` from ``source`` to ``target`` while clients keep working.

        Follows the protocol ``redis-cli --cluster reshard`` uses: mark the slot
        IMPORTING on the target and MIGRATING on the source, MIGRATE its keys,
        then assign it to the target on every primary. All keys of a slot move
        in one MIGRATE call, so a state's keys are never split between nodes.
        Returns the number of keys moved.
        """
        moved = 0
        for slot in slots:
            admin_command(target.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
            admin_command(source.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
            while True:
                keys = admin_command(source.port, "CLUSTER", "GETKEYSINSLOT", slot, 10_000)
                if not keys:
                    break
                admin_command(
                    source.port, "MIGRATE", self.host, target.port, "", 0, 10_000, "KEYS", *keys
                )
                moved += len(keys)
            for node in (target, source, *self._other_primaries(source, target)):
                admin_command(node.port, "CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        return moved

    def _other_primaries(
        self, source: ClusterNodeInfo, target: ClusterNodeInfo
    ) -> list[ClusterNodeInfo]:
        return [n for n in self.primaries() if n.node_id not in (source.node_id, target.node_id)]
