"""A throwaway Redis (or Valkey) Cluster on loopback ports, for tests and benchmarks.

:class:`EmbeddedCluster` starts ``primaries * (1 + replicas)`` server
processes (:class:`~recostate.testing.EmbeddedRedis`) with ``cluster-enabled
yes`` and a short ``cluster-node-timeout``, so that a killed primary is
replaced by its replica within a few seconds. The cluster is created with
``redis-cli --cluster create`` (``valkey-cli`` for Valkey) when the client
that comes with the server is found (and there are at least 3 primaries,
which it requires), otherwise with
``CLUSTER ADDSLOTS`` / ``MEET`` / ``REPLICATE``; :meth:`EmbeddedCluster.start`
returns once every node reports ``cluster_state:ok``, agrees on who serves
every slot, and every replica is in sync.

The helpers used by the scale-out tests live here too: killing and restarting
a node, waiting for a failover, and moving slots between primaries with
``CLUSTER SETSLOT`` + ``MIGRATE``, the steps ``redis-cli --cluster reshard``
takes.

Administration commands go through :func:`recostate.testing.resp.admin_command`.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from recostate.testing.resp import RespError, admin_command, text
from recostate.testing.servers import (
    EmbeddedRedis,
    ServerBinary,
    ServerGroup,
    free_port,
    resolve_binary,
    wait_until,
)

__all__ = ["SLOTS", "ClusterNodeInfo", "EmbeddedCluster"]

#: The number of hash slots of a Redis Cluster.
SLOTS = 16384

# The cluster bus listens on port + 10000 (the only choice before Redis 7).
_BUS_OFFSET = 10000

# Keys moved per MIGRATE call while resharding (its timeout is 10,000 ms).
_MIGRATE_BATCH = 10_000


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


class EmbeddedCluster(ServerGroup):
    """A Redis (or Valkey) Cluster of server processes this program started, and stops.

    Example::

        with EmbeddedCluster() as cluster:
            store = RedisStatePersistence(cluster.url, cluster=True)

    Args:
        binary: the server to run: a :class:`~recostate.testing.ServerBinary`,
            a path, or ``None`` for :func:`~recostate.testing.find_server`.
        primaries: how many primaries share the 16384 slots.
        replicas: replicas per primary.
        node_timeout_ms: ``cluster-node-timeout``: how long a silent node has
            before it is failed over.
        use_cli: create the cluster with ``redis-cli --cluster create`` (or
            ``valkey-cli``) when one is found (``False``: always with
            ``CLUSTER`` commands).
    """

    def __init__(
        self,
        binary: str | ServerBinary | None = None,
        *,
        primaries: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1000,
        use_cli: bool = True,
    ) -> None:
        if primaries < 1 or replicas < 0:
            raise ValueError("a cluster needs at least one primary")
        self.server = resolve_binary(binary)
        self.binary = self.server.path
        self.host = "127.0.0.1"
        self.primary_count = primaries
        self.replica_count = replicas
        self.node_timeout_ms = node_timeout_ms
        self.cli = self.server.cli if use_cli else None
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

    def processes(self) -> list[EmbeddedRedis]:
        """Return every node, in start order."""
        return list(self.nodes)

    def node(self, port: int) -> EmbeddedRedis:
        """Return the node listening on ``port``."""
        return self.process(port)

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
                self.nodes.append(EmbeddedRedis(self.server, args=self._node_args(), port=port))
            for node in self.nodes:
                node.start()
            # redis-cli refuses to create a cluster of fewer than 3 primaries.
            if self.cli and self.primary_count >= 3:
                self._create_with_cli(timeout)
            else:
                self._create_with_commands(timeout)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _create_with_cli(self, timeout: float) -> None:
        assert self.cli is not None
        addresses = [f"{self.host}:{node.port}" for node in self.nodes]
        result = subprocess.run(
            [
                self.cli,
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
            raise RuntimeError(f"{self.cli} --cluster create failed: {result.stdout[-2000:]}")

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
        ids = {node.port: text(admin_command(node.port, "CLUSTER", "MYID")) for node in self.nodes}
        for index, node in enumerate(self.nodes[self.primary_count :]):
            primary = primaries[index % self.primary_count]

            # A node can only replicate a primary it has heard of through gossip.
            def replicates(port: int = node.port, primary_id: str = ids[primary.port]) -> bool:
                with contextlib.suppress(RespError):
                    admin_command(port, "CLUSTER", "REPLICATE", primary_id)
                    return True
                return False

            wait_until(replicates, timeout, "a replica could not follow its primary")

    def topology(self, via: int | None = None) -> list[ClusterNodeInfo]:
        """Return ``CLUSTER NODES`` as seen from the node on port ``via`` (default: any live one)."""
        ports = [via] if via is not None else [n.port for n in self.nodes if n.pid is not None]
        last: Exception | None = None
        for port in ports:
            try:
                return _parse_nodes(text(admin_command(port, "CLUSTER", "NODES")))
            except (OSError, RespError) as exc:
                last = exc
        raise RuntimeError(f"no node answered CLUSTER NODES: {last}")

    def _healthy(self) -> bool:
        running = [node for node in self.nodes if node.pid is not None]
        views = []
        for node in running:
            try:
                info = text(admin_command(node.port, "CLUSTER", "INFO", timeout=2))
                if "cluster_state:ok" not in info:
                    return False
                views.append(self.topology(node.port))
                replication = text(admin_command(node.port, "INFO", "replication"))
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
        wait_until(self._healthy, timeout, "the cluster did not become healthy", step=0.1)

    def stop(self) -> None:
        """Stop every node and remove their directories."""
        super().stop()
        self.nodes = []

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

    def wait_promoted(self, old_primary: ClusterNodeInfo, timeout: float = 30.0) -> int:
        """Wait until a replica serves ``old_primary``'s slots; return its port.

        (A killed node started again with :meth:`restart` rejoins the cluster
        from its ``nodes.conf``.)
        """
        promoted: list[int] = []

        def taken_over() -> bool:
            with contextlib.suppress(RuntimeError):
                for node in self.primaries():
                    if node.port != old_primary.port and set(old_primary.slots) <= set(node.slots):
                        promoted.append(node.port)
                        return True
            return False

        wait_until(taken_over, timeout, "no replica took over the killed primary's slots", step=0.1)
        return promoted[0]

    # -- resharding -----------------------------------------------------------------------

    def move_slots(
        self, slots: Sequence[int], source: ClusterNodeInfo, target: ClusterNodeInfo
    ) -> int:
        """Move ``slots`` from ``source`` to ``target`` while clients keep working.

        Follows the protocol ``redis-cli --cluster reshard`` uses, one slot at
        a time: mark the slot IMPORTING on the target and MIGRATING on the
        source, move its keys with ``MIGRATE ... KEYS`` in batches of up to
        10,000 (``CLUSTER GETKEYSINSLOT``) until none is left, then assign the
        slot to the target on every primary. A slot holding more keys than one
        batch is split between the two nodes while it moves: clients are sent
        to the target (``ASK``) for keys already moved, and a command or script
        that needs keys on both sides gets ``TRYAGAIN`` (or a "non local key"
        script error, which recostate retries) until the slot has moved.
        Returns the number of keys moved.
        """
        moved = 0
        for slot in slots:
            admin_command(target.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
            admin_command(source.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
            while True:
                keys = admin_command(source.port, "CLUSTER", "GETKEYSINSLOT", slot, _MIGRATE_BATCH)
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
