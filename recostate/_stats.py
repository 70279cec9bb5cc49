"""The counters a store keeps about its own work, reported by ``get_stats()``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["StoreCounters", "pairs", "summarise_info"]


@dataclass
class StoreCounters:
    """Counts since the store was created; only the event loop thread updates them."""

    saves: int = 0
    loads: int = 0
    conflicts: int = 0
    integrity_failures: int = 0
    bytes_raw: int = 0
    bytes_stored: int = 0

    def record_save(self, size_bytes: int, stored_bytes: int) -> None:
        """Count one written version of ``size_bytes`` encoded, ``stored_bytes`` stored."""
        self.saves += 1
        self.bytes_raw += size_bytes
        self.bytes_stored += stored_bytes

    def snapshot(self) -> dict[str, Any]:
        """Return the counters and ``compression_ratio`` (raw bytes per stored byte)."""
        figures: dict[str, Any] = asdict(self)
        figures["compression_ratio"] = (
            self.bytes_raw / self.bytes_stored if self.bytes_stored else 1.0
        )
        return figures


_INFO_FIELDS = (
    "redis_version",
    "redis_mode",
    "role",
    "uptime_in_seconds",
    "used_memory",
    "used_memory_peak",
    "maxmemory",
    "maxmemory_policy",
    "connected_clients",
    "blocked_clients",
    "total_commands_processed",
    "keyspace_hits",
    "keyspace_misses",
    "evicted_keys",
    "expired_keys",
)


def pairs(reply: Any) -> dict[Any, Any]:
    """Return a reply of name/value pairs as a dict."""
    # A flat [name, value, ...] array in RESP2, already a map in RESP3.
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=False))


def _pick(info: dict[str, Any]) -> dict[str, Any]:
    return {name: info[name] for name in _INFO_FIELDS if name in info}


def summarise_info(info: dict[str, Any], *, cluster: bool) -> dict[str, Any]:
    """Return the INFO fields get_stats reports (summed over primaries on a cluster)."""
    if not cluster or "redis_version" in info:
        return _pick(info)
    # RedisCluster.info() answers {node name: INFO of that node}.
    nodes = {str(name): _pick(node) for name, node in info.items() if isinstance(node, dict)}
    first = next(iter(nodes.values()), {})

    def total(name: str) -> int:
        return sum(int(node.get(name, 0)) for node in nodes.values())

    return {
        "redis_version": first.get("redis_version"),
        "redis_mode": first.get("redis_mode", "cluster"),
        "primaries": len(nodes),
        "used_memory": total("used_memory"),
        "connected_clients": total("connected_clients"),
        "total_commands_processed": total("total_commands_processed"),
        "keyspace_hits": total("keyspace_hits"),
        "keyspace_misses": total("keyspace_misses"),
        "evicted_keys": total("evicted_keys"),
        "expired_keys": total("expired_keys"),
        "nodes": nodes,
    }
