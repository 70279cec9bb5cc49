"""The counters a store keeps about its own work, reported by ``get_stats()``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["StoreCounters"]


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
